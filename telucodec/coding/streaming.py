"""Any length in bounded memory: chunked and streaming encode/decode.

The codec is a stack of convolutions (and, with the vocos head, frame-rate ConvNeXt blocks and an inverse STFT;
with envelope codebooks, an STFT analysis and re-synthesis). None of it looks further than a fixed number of
samples or frames to either side, so a long input can be coded one piece at a time: give each piece enough context
on both sides (at least the model's receptive field), keep only its middle, and the result is the one the model
gives on the whole file at once: the same codes and, to float rounding, the same samples (see Float rounding).

The receptive field is not read from the config: :func:`context` *measures* it, by back-propagating from one
frame in the middle of a random probe through a copy of the codec with random weights and seeing which input
samples (encoder) or code frames (decoder) get a gradient. So it covers any head (conv, vocos, istft blocks),
envelope codebooks, the envelope post-filter and whatever is added later, as long as it stays local.

Two things in the whole-file decoder are not local, and this module reproduces them instead of changing them:
the envelope codebooks (:meth:`telucodec.codec.envelope.EnvelopeCoder.impose`) and the envelope post-filter interpolate
their per-frame gains to the STFT frames with ``F.interpolate(size=...)``, whose step is ``frames / stft_frames``
(slightly under 1/2 and 1), so where a gain lands drifts by up to half a code frame over a long file and depends
on the file's length. :class:`StreamDecoder` uses the same global step when it knows the stream's length (a
``.tlc`` header says it; :meth:`CodecModel.decode` knows it), which makes it identical to the whole-file decoder;
a live stream of unknown length uses the step's limit (exactly 1/2 and 1, the time-aligned mapping).

API::

    codes = model.encode(wav, 16000)               # chunked by default (chunk_seconds=0: one piece)
    enc = model.stream_encoder(kbps=6)              # push samples, get code frames
    frames = enc.push(block)                        # (n_q, k) int64, k >= 0
    frames = enc.flush()                            # the rest, at the end of the input
    dec = model.stream_decoder(num_frames=..., num_samples=...)   # totals optional
    audio = dec.push(frames); audio = dec.flush()
    enc.delay_samples, dec.delay_samples            # algorithmic delay: frame + look-ahead, decoder look-ahead

:func:`measure_delay` pushes samples one at a time and reports when each frame really comes out.

Float rounding: PyTorch picks convolution kernels by tensor shape (oneDNN or its own, and oneDNN's blocking),
so the same frame computed inside a piece and inside the whole file can differ in the last bits (~1e-7 relative),
as two whole files of different lengths can. Samples then agree to ~1e-5; a code differs only where two codewords
are that close, which is rare: 0 of 180,000 codes differed on 5 minutes of Common Voice Telugu with the shipped
model at 3, 10 and 20 s pieces; 2 of 3,000 (residual stages 8 and 9) on one 5-s noise clip cut into 0.7-s pieces.
"""

from __future__ import annotations

import copy
import math
import os
import secrets
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from telucodec.data.audio_io import (
    _AV_ONLY,
    _WRITE_FORMATS,
    AudioReadError,
    _check_file,
    _one_line,
    _quiet_stderr,
    av_audio_stream,
)
from telucodec.errors import TeluCodecError

__all__ = [
    "DEFAULT_CHUNK_SECONDS",
    "Context",
    "context",
    "StreamEncoder",
    "StreamDecoder",
    "encode_chunked",
    "decode_chunked",
    "measure_delay",
    "AudioBlockReader",
    "AudioBlockWriter",
]

#: Seconds of audio per piece on the chunked path. Working memory grows with it (the shipped model: about 100 MB
#: above its 630 MB start-up at 20 s, results/bench/long/); speed was about flat from 5 to 20 s.
DEFAULT_CHUNK_SECONDS = 20.0

#: Seconds of audio per block read from a file (AudioBlockReader).
BLOCK_SECONDS = 10.0

_PROBE_MAX_FRAMES = 4096


# ------------------------------------------------------------------------------------------ receptive field
@dataclass(frozen=True)
class Context:
    """What one code frame depends on, measured by :func:`context`.

    ``encoder_left`` / ``encoder_right``: samples before a frame's first / after its last sample that its code
    depends on (``encoder_right`` is the encoder's look-ahead). ``decoder_left`` / ``decoder_right``: code frames
    before / after frame t that the samples of frame t depend on (``decoder_right`` is the decoder's look-ahead);
    ``decoder_margin`` of them (0 or 1 each side) are added for the gain interpolation's drift."""

    hop_length: int
    encoder_left: int
    encoder_right: int
    decoder_left: int
    decoder_right: int
    decoder_margin: int = 0

    @property
    def encoder_left_frames(self) -> int:
        return -(-self.encoder_left // self.hop_length)

    @property
    def lookahead_samples(self) -> int:
        """Encoder look-ahead plus decoder look-ahead, in samples."""
        return self.encoder_right + self.decoder_right * self.hop_length

    @property
    def algorithmic_delay_samples(self) -> int:
        """From a sample entering the encoder to the same sample leaving the decoder, computation aside: one frame
        (for its first sample) plus the look-ahead."""
        return self.hop_length + self.lookahead_samples


_CONTEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def context(codec) -> Context:
    """The receptive field of `codec` (a Codec or CodecModel), measured once and cached."""
    codec = getattr(codec, "codec", codec)
    found = _CONTEXTS.get(codec)
    if found is None:
        found = _CONTEXTS[codec] = _measure_context(codec)
    return found


def _randomised_copy(codec):
    """A float32 copy in eval mode with every parameter random and non-zero (a zero-initialised layer, such as the
    post-filter's last one, would hide a dependency from the gradient)."""
    clone = copy.deepcopy(codec).float().cpu().eval()
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in clone.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(max(1, p[0].numel())))
            else:
                p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=gen))
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _support(grads, axis_len: int) -> tuple:
    """(first, last) index along the last axis where any of `grads` is non-zero."""
    nz = torch.zeros(axis_len, dtype=torch.bool)
    for g in grads:
        if g is not None:
            nz |= g.abs().reshape(-1, g.shape[-1]).sum(0) > 0
    idx = torch.nonzero(nz).flatten()
    if idx.numel() == 0:
        raise TeluCodecError("could not measure the codec's receptive field (no gradient reached the input)")
    return int(idx.min()), int(idx.max())


def _measure_context(codec) -> Context:
    hop = codec.hop_length
    clone = _randomised_copy(codec)
    gen = torch.Generator().manual_seed(99)
    enc = dec = None
    frames = 16
    with torch.enable_grad():
        while enc is None or dec is None:
            if frames > _PROBE_MAX_FRAMES:
                raise TeluCodecError(
                    f"the codec's receptive field is wider than {_PROBE_MAX_FRAMES} frames: it "
                    f"cannot be coded in pieces"
                )
            c = frames // 2
            if enc is None:  # encoder: input samples -> frame c
                x = (0.1 * torch.randn(1, 1, frames * hop, generator=gen)).requires_grad_()
                z = clone.encoder(x)
                if z.shape[-1] != frames:
                    raise TeluCodecError(f"the encoder gives {z.shape[-1]} frames for {frames} x {hop} samples")
                target = (z[..., c] * torch.randn(z.shape[1], generator=gen)).sum()
                if clone.envelope is not None:
                    env = clone.envelope.envelope(x, frames)
                    target = target + (env[..., c] * torch.randn(env.shape[1], generator=gen)).sum()
                lo, hi = _support(torch.autograd.grad(target, x), frames * hop)
                if lo > 0 and hi < frames * hop - 1:
                    enc = (max(0, c * hop - lo), max(0, hi - ((c + 1) * hop - 1)))
            if dec is None:  # decoder: latent/envelope frames -> frame c
                latent = torch.randn(1, codec.config.latent_dim, frames, generator=gen).requires_grad_()
                inputs = [latent]
                envelope = None
                if clone.envelope is not None:
                    with torch.no_grad():
                        raw = clone.decoder(latent)
                        own = clone.envelope._pooled(clone.envelope._stft(raw), frames)[:, clone.envelope.first :]
                    envelope = (own + 0.1 * torch.randn(own.shape, generator=gen)).requires_grad_()
                    inputs.append(envelope)
                y = _synthesise(clone, latent, envelope, 0, None, _Totals(frames, frames * hop))
                if y.shape[-1] != frames * hop:
                    raise TeluCodecError(f"the decoder gives {y.shape[-1]} samples for {frames} frames of {hop}")
                target = (y[0, 0, c * hop : (c + 1) * hop] * torch.randn(hop, generator=gen)).sum()
                lo, hi = _support(torch.autograd.grad(target, inputs, allow_unused=True), frames)
                if lo > 0 and hi < frames - 1:
                    dec = (c - lo, hi - c)
            frames *= 2
    margin = 1 if (codec.envelope is not None or codec.postfilter is not None) else 0
    return Context(hop, enc[0], enc[1], dec[0] + margin, dec[1] + margin, margin)


# ------------------------------------------------------------------------- synthesis of one piece (decoder)
@dataclass(frozen=True)
class _Totals:
    """The whole stream's length, for the gain interpolations (None: unknown, a live stream)."""

    frames: int | None
    samples: int | None


def _global_linear(
    x: torch.Tensor, in_first: int, out_first: int, n_out: int, ratio: float, n_in_total: int | None
) -> torch.Tensor:
    """``F.interpolate(whole, size=..., mode="linear", align_corners=False)`` of the whole signal, evaluated on
    `n_out` output positions from `out_first` on, when `x` holds the whole input's positions `in_first`... only.
    `ratio` is the whole call's input/output size ratio; the index arithmetic is PyTorch's, in float32."""
    j = np.arange(out_first, out_first + n_out, dtype=np.int64).astype(np.float32)
    r = np.float32(ratio)
    src = np.maximum(r * (j + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.floor(src).astype(np.int64)
    last = n_in_total - 1 if n_in_total is not None else np.iinfo(np.int64).max
    i0 = np.minimum(i0, last)
    lam = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = np.where(i0 < last, i0 + 1, i0)
    n_local = x.shape[-1]
    i0 = torch.from_numpy(np.clip(i0 - in_first, 0, n_local - 1)).to(x.device)
    i1 = torch.from_numpy(np.clip(i1 - in_first, 0, n_local - 1)).to(x.device)
    lam1 = torch.from_numpy(lam).to(device=x.device, dtype=x.dtype)
    return x[..., i0] * (1 - lam1) + x[..., i1] * lam1


def _ratio(in_frames: int | None, samples: int | None, stft_hop: int, per_frame: int, limit: float) -> float:
    """The input/output size ratio of the whole-file interpolation: (code frames x per_frame) / STFT frames."""
    if in_frames is None:
        return limit
    stft_frames = samples // stft_hop + 1
    return float(np.float32(in_frames * per_frame) / np.float32(stft_frames))


def _postfilter_piece(pf, raw, latent, first_frame: int, totals: _Totals):
    """EnvelopePostfilter.forward's waveform for a piece (its gain interpolation made global)."""
    from telucodec.codec.spectral import _window, mel_band_filters

    spec = pf._stft(raw)
    g = pf.head(latent.float())
    b, _, k = g.shape
    g = g.reshape(b, 2, pf.n_bands, k).permute(0, 2, 3, 1).reshape(b, pf.n_bands, 2 * k)
    ratio = _ratio(totals.frames, totals.samples, pf.hop, 2, 1.0)
    n_in = 2 * totals.frames if totals.frames is not None else None
    g = _global_linear(g, 2 * first_frame, 2 * first_frame, spec.shape[-1], ratio, n_in)
    _, spread = mel_band_filters(pf.n_fft, pf.n_bands, pf.sample_rate, str(spec.device))
    gain = torch.exp(0.5 * torch.einsum("fk,bkt->bft", spread, g.clamp(-10.0, 10.0)))
    out = torch.istft(
        spec * gain, pf.n_fft, pf.hop, window=_window(pf.n_fft, str(spec.device)), center=True, length=raw.shape[-1]
    )
    return out[:, None].to(raw.dtype)


def _impose_piece(coder, raw, envelope, first_frame: int, totals: _Totals):
    """EnvelopeCoder.impose for a piece (its gain interpolation made global)."""
    from telucodec.codec.envelope import HOP, N_FFT
    from telucodec.codec.spectral import _window

    spec = coder._stft(raw)
    own = coder._pooled(spec, envelope.shape[-1])
    gain = torch.zeros_like(own)
    gain[:, coder.first :] = 0.5 * (envelope - own[:, coder.first :])
    ratio = _ratio(totals.frames, totals.samples, HOP, 1, 0.5)
    gain = _global_linear(gain, first_frame, 2 * first_frame, spec.shape[-1], ratio, totals.frames).clamp(-10.0, 10.0)
    gain = torch.exp(torch.einsum("fk,bkt->bft", coder.spread, gain))
    out = torch.istft(spec * gain, N_FFT, HOP, window=_window(N_FFT, str(raw.device)), length=raw.shape[-1])
    return out[:, None].to(raw.dtype)


def _synthesise(codec, latent, envelope, first_frame: int, trim: int | None, totals: _Totals):
    """Codec.decode_tensor after the codebook look-ups, for a piece that starts at code frame `first_frame`:
    decoder, trim to `trim` samples (the stream's end inside this piece), post-filter, envelope."""
    raw = codec.decoder(latent)
    if trim is not None:
        raw = raw[..., :trim]
    if codec.postfilter is not None:
        raw = _postfilter_piece(codec.postfilter, raw, latent, first_frame, totals)
    if envelope is not None:
        raw = _impose_piece(codec.envelope, raw, envelope, first_frame, totals)
    return raw


# ------------------------------------------------------------------------------------------------ encoder
def _as_mono(samples) -> np.ndarray:
    x = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if x.ndim != 1:
        x = x.reshape(-1) if x.size == max(x.shape, default=0) else None
    if x is None:
        raise TeluCodecError("push mono samples (a 1-D array)")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise TeluCodecError("the waveform contains NaN or inf samples")
    return x


class StreamEncoder:
    """Push samples (mono, float, at the model's rate), get code frames out: ``push(samples)`` returns the frames
    whose codes are final, ``flush()`` the rest at the end of the input. Whatever the push sizes, the
    concatenated codes equal ``model.encode(whole input)`` (to float rounding: the module docstring).

    A frame's code is final once ``lookahead_samples`` samples after its last sample have arrived, so its code
    comes out ``delay_samples = hop_length + lookahead_samples`` samples after its first sample arrived (the
    algorithmic delay; :func:`measure_delay` checks it). With ``min_frames`` > 1 the encoder waits for that many
    new frames before it runs (less computation per frame, more delay). ``max_frames`` bounds one run (memory)."""

    def __init__(
        self, model, kbps: float = 6.0, *, n_q: int | None = None, min_frames: int = 1, max_frames: int | None = None
    ):
        self.model = model
        self.codec = model.codec
        self.n_q = int(n_q) if n_q is not None else model.kbps_to_n_q(kbps)
        if not 1 <= self.n_q <= model.config.n_q:
            raise TeluCodecError(f"n_q must be between 1 and {model.config.n_q}, got {n_q}")
        ctx = context(self.codec)
        self.context = ctx
        self.hop_length = ctx.hop_length
        self.lookahead_samples = ctx.encoder_right
        self.delay_samples = self.hop_length + self.lookahead_samples
        self._left = ctx.encoder_left_frames
        self.min_frames = max(1, int(min_frames))
        default_max = int(DEFAULT_CHUNK_SECONDS * model.config.frame_rate)
        self.max_frames = max(self.min_frames, int(max_frames or default_max))
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # absolute index of _buf[0]
        self._received = 0
        self._next = 0  # next frame to emit
        self._finished = False

    @property
    def samples_in(self) -> int:
        return self._received

    @property
    def frames_out(self) -> int:
        return self._next

    def push(self, samples) -> np.ndarray:
        """Append samples; return the (n_q, k) int64 codes of the frames now final (k may be 0)."""
        if self._finished:
            raise TeluCodecError("this StreamEncoder was flushed; start a new one")
        x = _as_mono(samples)
        out = []
        step = self.max_frames * self.hop_length
        for i in range(0, x.size, step):  # bounded buffer whatever the push size
            part = x[i : i + step]
            self._buf = np.concatenate([self._buf, part]) if self._buf.size else part.copy()
            self._received += part.size
            out += self._run(final=False)
        return self._join(out)

    def flush(self) -> np.ndarray:
        """End of the input: the codes of every frame not yet returned (the last frame zero-padded, as
        ``model.encode`` does)."""
        if self._finished:
            return self._join([])
        if self._received == 0:
            raise TeluCodecError("expected a non-empty mono waveform (no samples were pushed)")
        out = self._run(final=True)
        self._finished = True
        self._buf = np.zeros(0, np.float32)
        return self._join(out)

    def _join(self, parts) -> np.ndarray:
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.n_q, 0), np.int64)

    def _encode_piece(self, piece: np.ndarray) -> np.ndarray:
        """(n_q, frames) int64 codes of a piece that starts on a frame boundary (zero-padded at its end)."""
        x = torch.from_numpy(piece)[None, None].to(self.model.device)
        return self.codec.encode_tensor(x, self.n_q)[0].cpu().numpy().astype(np.int64)

    def _run(self, final: bool) -> list:
        hop, right = self.hop_length, self.lookahead_samples
        if final:
            ready_end = -(-self._received // hop)
        else:
            ready_end = max(0, (self._received - right) // hop)
        out = []
        while True:
            ready = ready_end - self._next
            if ready <= 0 or (not final and ready < self.min_frames):
                break
            s = self._next
            e = s + min(ready, self.max_frames)
            start = max(0, min(s, e - self.min_frames) - self._left) * hop  # at least min_frames per run
            end = min(self._received, e * hop + right)
            piece = self._buf[start - self._buf_start : end - self._buf_start]
            codes = self._encode_piece(np.ascontiguousarray(piece))
            first = start // hop
            out.append(codes[:, s - first : e - first])
            self._next = e
            keep_from = max(0, self._next - self.min_frames - self._left) * hop
            if keep_from > self._buf_start:
                self._buf = self._buf[keep_from - self._buf_start :]
                self._buf_start = keep_from
        return out


# ------------------------------------------------------------------------------------------------ decoder
class StreamDecoder:
    """Push code frames ((n_q, k) integers), get samples out: ``push(codes)`` returns the samples that are final,
    ``flush()`` the rest. The samples of frame t are final once frame t + ``lookahead_frames`` has arrived:
    ``delay_samples = lookahead_frames x hop_length``.

    ``num_frames`` and ``num_samples``: the stream's totals, when known (a .tlc header, ``model.decode``). The
    output is trimmed to ``num_samples``; with envelope codebooks or the post-filter the totals also fix the
    whole-file decoder's gain interpolation, and the output equals ``model.decode(all codes, num_samples)`` to
    float rounding. Without them (a live stream) the interpolation is the time-aligned one (step exactly 1/2),
    which the whole-file decoder approaches on long files. A codec with neither is exact either way."""

    def __init__(
        self,
        model,
        *,
        n_q: int | None = None,
        num_frames: int | None = None,
        num_samples: int | None = None,
        min_frames: int = 1,
        max_frames: int | None = None,
    ):
        self.model = model
        self.codec = model.codec
        cfg = model.config
        ctx = context(self.codec)
        self.context = ctx
        self.hop_length = ctx.hop_length
        self.lookahead_frames = ctx.decoder_right
        self.delay_samples = self.lookahead_frames * self.hop_length
        self._left = ctx.decoder_left
        self.n_q = int(n_q) if n_q is not None else None
        if self.n_q is not None and not 1 <= self.n_q <= cfg.n_q:
            raise TeluCodecError(f"n_q must be between 1 and {cfg.n_q}, got {n_q}")
        if num_frames is not None and int(num_frames) < 1:
            raise TeluCodecError(f"num_frames must be at least 1, got {num_frames}")
        if num_samples is not None and int(num_samples) < 1:
            raise TeluCodecError(f"num_samples must be at least 1, got {num_samples}")
        self.num_frames = int(num_frames) if num_frames is not None else None
        self._live = self.num_frames is None  # the gain interpolations use their limit step (see the class)
        self.num_samples = int(num_samples) if num_samples is not None else None
        self.min_frames = max(1, int(min_frames))
        default_max = int(DEFAULT_CHUNK_SECONDS * cfg.frame_rate)
        self.max_frames = max(self.min_frames, int(max_frames or default_max))
        self._buf = np.zeros((self.n_q or 0, 0), np.int64)
        self._buf_start = 0
        self._received = 0
        self._next = 0  # next frame whose samples are emitted
        self._emitted = 0  # samples emitted
        self._finished = False

    @property
    def frames_in(self) -> int:
        return self._received

    @property
    def samples_out(self) -> int:
        return self._emitted

    def _check(self, codes) -> np.ndarray:
        c = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
        if c.ndim == 1 and self.n_q is not None and c.size == self.n_q:
            c = c[:, None]  # one frame
        cfg = self.model.config
        if c.ndim != 2 or not (np.issubdtype(c.dtype, np.integer) or c.size == 0):
            raise TeluCodecError("codes must be (n_q, frames) integers in [0, codebook_size)")
        if self.n_q is None:
            if not 1 <= c.shape[0] <= cfg.n_q:
                raise TeluCodecError(f"codes must have 1..{cfg.n_q} rows (n_q), got {c.shape[0]}")
            self.n_q = c.shape[0]
            self._buf = np.zeros((self.n_q, 0), np.int64)
        if c.shape[0] != self.n_q:
            raise TeluCodecError(f"expected {self.n_q} codes per frame, got {c.shape[0]}")
        if c.size and (int(c.min()) < 0 or int(c.max()) >= cfg.codebook_size):
            raise TeluCodecError("codes must be (n_q, frames) integers in [0, codebook_size)")
        return c.astype(np.int64, copy=False)

    def push(self, codes) -> np.ndarray:
        """Append code frames; return the float32 samples now final (possibly none)."""
        if self._finished:
            raise TeluCodecError("this StreamDecoder was flushed; start a new one")
        c = self._check(codes)
        if self.num_frames is not None and self._received + c.shape[1] > self.num_frames:
            raise TeluCodecError(f"more than the {self.num_frames} frames this stream declared")
        out = []
        for i in range(0, c.shape[1], self.max_frames):
            part = c[:, i : i + self.max_frames]
            self._buf = np.concatenate([self._buf, part], axis=1)
            self._received += part.shape[1]
            out += self._run(final=False)
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        """End of the stream: the remaining samples (trimmed to num_samples when it was given)."""
        if self._finished:
            return np.zeros(0, np.float32)
        if self._received == 0:
            raise TeluCodecError("no code frames were pushed")
        if self.num_frames is not None and self._received != self.num_frames:
            raise TeluCodecError(f"the stream declared {self.num_frames} frames but {self._received} arrived")
        self.num_frames = self._received
        out = self._run(final=True)
        self._finished = True
        self._buf = np.zeros((self.n_q, 0), np.int64)
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _length(self) -> int | None:
        """The output length when known: num_samples, at most num_frames x hop."""
        if self.num_frames is None:
            return None
        full = self.num_frames * self.hop_length
        return min(self.num_samples, full) if self.num_samples is not None else full

    @torch.no_grad()
    def _run(self, final: bool) -> list:
        hop, right = self.hop_length, self.lookahead_frames
        total = self._received
        ready_end = total if final else max(0, total - right)
        length = self._length()  # known at the end, or from the start when num_frames was given
        limit = length if length is not None else self.num_samples
        totals = _Totals(None, None) if self._live else _Totals(self.num_frames, length)
        e_stages = self.codec.envelope_stages(self.n_q)
        out = []
        while True:
            ready = ready_end - self._next
            if ready <= 0 or (not final and ready < self.min_frames):
                break
            s = self._next
            e = s + min(ready, self.max_frames)
            first = max(0, min(s, e - self.min_frames) - self._left)  # at least min_frames per run
            last = min(total, e + right)
            piece = torch.from_numpy(self._buf[:, first - self._buf_start : last - self._buf_start])[None]
            piece = piece.to(self.model.device)
            latent = self.codec.quantizer.decode_codes(piece[:, : self.n_q - e_stages])
            envelope = self.codec.envelope.decode(piece[:, self.n_q - e_stages :]) if e_stages else None
            at_end = final and last == total and length is not None
            trim = length - first * hop if at_end and length < last * hop else None
            y = _synthesise(self.codec, latent, envelope, first, trim, totals)[0, 0]
            stop = e * hop if limit is None else min(e * hop, limit)
            samples = y[s * hop - first * hop : max(s * hop, stop) - first * hop].float().cpu().numpy()
            out.append(samples)
            self._emitted += samples.size
            self._next = e
            keep_from = max(0, self._next - self.min_frames - self._left)
            if keep_from > self._buf_start:
                self._buf = self._buf[:, keep_from - self._buf_start :]
                self._buf_start = keep_from
        return out


# ----------------------------------------------------------------------------------- whole arrays, chunked
def chunk_frames(model, chunk_seconds: float | None = None) -> int | None:
    """Frames per piece; None = one piece."""
    if chunk_seconds is None:
        chunk_seconds = DEFAULT_CHUNK_SECONDS
    if not chunk_seconds or chunk_seconds == math.inf:
        return None
    if chunk_seconds < 0 or not math.isfinite(chunk_seconds):
        raise TeluCodecError(f"chunk_seconds must be positive (or 0 for one piece), got {chunk_seconds}")
    return max(1, int(round(chunk_seconds * model.config.frame_rate)))


def encode_chunked(model, wav: np.ndarray, n_q: int, chunk_seconds: float | None = None) -> np.ndarray:
    """(n_q, frames) int64 codes of a mono float32 waveform at the model's rate, `chunk_seconds` at a time
    (None: DEFAULT_CHUNK_SECONDS; 0: the whole input in one piece). Identical to one piece."""
    chunk = chunk_frames(model, chunk_seconds)
    if chunk is None or wav.size <= chunk * model.config.hop_length:
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None].to(model.device)
        return model.codec.encode_tensor(x, n_q)[0].cpu().numpy().astype(np.int64)
    enc = StreamEncoder(model, n_q=n_q, min_frames=chunk, max_frames=chunk)
    parts = [enc.push(wav), enc.flush()]
    return np.concatenate(parts, axis=1)


def decode_chunked(
    model, codes: np.ndarray, num_samples: int | None = None, chunk_seconds: float | None = None
) -> np.ndarray:
    """float32 waveform of (n_q, frames) codes, `chunk_seconds` at a time; equal to one piece to float rounding."""
    chunk = chunk_frames(model, chunk_seconds)
    frames = codes.shape[1]
    hop = model.config.hop_length
    odd_length = num_samples is not None and num_samples <= (frames - 1) * hop  # not a .tlc's: whole-file rules
    if chunk is None or frames <= chunk or odd_length:
        c = torch.as_tensor(codes, dtype=torch.long, device=model.device)[None]
        return model.codec.decode_tensor(c, num_samples)[0, 0].float().cpu().numpy()
    dec = StreamDecoder(
        model, n_q=codes.shape[0], num_frames=frames, num_samples=num_samples, min_frames=chunk, max_frames=chunk
    )
    length = min(num_samples, frames * hop) if num_samples is not None else frames * hop
    out = np.empty(length, np.float32)
    at = 0
    for i in range(0, frames, chunk):
        y = dec.push(codes[:, i : i + chunk])
        out[at : at + y.size] = y
        at += y.size
    y = dec.flush()
    out[at : at + y.size] = y
    assert at + y.size == length
    return out


# ------------------------------------------------------------------------------------------------- delay
def measure_delay(model, kbps: float = 6.0, seconds: float = 1.0, block: int = 1, seed: int = 0) -> dict:
    """Push `seconds` of noise `block` samples at a time and record, for every frame, how many samples had
    arrived when its code came out (encoder) and how many code frames had arrived when its samples came out
    (decoder). Returns the measured worst cases beside the stated delays, in samples and milliseconds."""
    sr, hop = model.sample_rate, model.config.hop_length
    x = (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)
    enc = model.stream_encoder(kbps=kbps)
    enc_delay, frames = [], []
    for i in range(0, x.size, block):
        got = enc.push(x[i : i + block])
        for _ in range(got.shape[1]):
            t = len(enc_delay)
            enc_delay.append(min(i + block, x.size) - t * hop)  # samples since the frame's first sample
        frames.append(got)
    codes = np.concatenate(frames + [enc.flush()], axis=1)
    final_frames = len(enc_delay)  # frames that came out before the end
    dec = model.stream_decoder(n_q=codes.shape[0])
    dec_delay, emitted = [], 0
    for j in range(codes.shape[1]):
        emitted += dec.push(codes[:, j : j + 1]).size
        while len(dec_delay) < emitted // hop:
            dec_delay.append((j + 1 - (len(dec_delay) + 1)) * hop)  # frames after it that had to arrive
    dec.flush()
    ms = 1000.0 / sr
    enc_measured = max(enc_delay) if enc_delay else None
    dec_measured = max(dec_delay) if dec_delay else None
    return {
        "hop_length": hop,
        "sample_rate": sr,
        "frames_before_end": final_frames,
        "encoder_delay_samples": enc.delay_samples,
        "encoder_delay_measured_samples": enc_measured,
        "encoder_lookahead_samples": enc.lookahead_samples,
        "decoder_delay_samples": dec.delay_samples,
        "decoder_delay_measured_samples": dec_measured,
        "total_delay_samples": enc.delay_samples + dec.delay_samples,
        "encoder_delay_ms": enc.delay_samples * ms,
        "decoder_delay_ms": dec.delay_samples * ms,
        "total_delay_ms": (enc.delay_samples + dec.delay_samples) * ms,
    }


# ------------------------------------------------------------------------------------ audio files in blocks
class AudioBlockReader:
    """An audio file as mono float32 blocks at `sample_rate`, with :func:`telucodec.data.audio_io.read_audio`'s
    checks and one-line errors (AudioReadError naming the file): soundfile first, PyAV for what libsndfile cannot
    open; channels averaged; resampled by a streaming soxr resampler (the same samples as soxr in one go).
    Opening checks the file; iterating reads it. ``num_samples`` counts what came out so far."""

    def __init__(self, path, sample_rate: int | None, block_seconds: float | None = None):
        self.path = Path(path)
        _check_file(self.path)
        self.target_rate = int(sample_rate) if sample_rate else None
        self.block_seconds = float(block_seconds or BLOCK_SECONDS)
        self.num_samples = 0
        self._errors: list = []
        self._sf = None
        self.source_rate = 0
        if self.path.suffix.lower() not in _AV_ONLY:
            try:
                import soundfile as sf

                with _quiet_stderr():
                    self._sf = sf.SoundFile(str(self.path))
                self.source_rate = int(self._sf.samplerate)
            except MemoryError:
                raise
            except Exception as e:  # libsndfile's errors are many and loosely typed
                self._errors.append(_one_line(e))
                self._sf = None
        if self._sf is None:
            self.source_rate = self._av_rate()
        if self.source_rate <= 0:
            self.close()
            raise AudioReadError(self.path, f"invalid sample rate {self.source_rate}")

    def _av_rate(self) -> int:
        try:
            import av

            with av.open(str(self.path), mode="r") as container:
                return av_audio_stream(container)[1]
        except ImportError:
            self._errors.append("PyAV is not installed (pip install av)")
        except MemoryError:
            raise
        except Exception as e:
            self._errors.append(_one_line(e))
        reason = self._errors[0] if self._errors else "unknown error"
        raise AudioReadError(self.path, f"not a readable audio file ({reason})")

    def close(self):
        if self._sf is not None:
            self._sf.close()
            self._sf = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _sf_blocks(self) -> Iterator[np.ndarray]:
        n = max(1, int(self.block_seconds * self.source_rate))
        while True:
            with _quiet_stderr():
                data = self._sf.read(n, dtype="float32", always_2d=True)
            if data.shape[0] == 0:
                return
            yield data

    def _av_blocks(self) -> Iterator[np.ndarray]:
        import av

        n = max(1, int(self.block_seconds * self.source_rate))
        pending, count = [], 0
        with av.open(str(self.path), mode="r") as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=self.source_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    a = out.to_ndarray().reshape(-1)
                    pending.append(a)
                    count += a.size
                    if count >= n:
                        yield np.concatenate(pending)[:, None]
                        pending, count = [], 0
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().reshape(-1))
        if pending:
            yield np.concatenate(pending)[:, None]

    def __iter__(self) -> Iterator[np.ndarray]:
        resampler = None
        if self.target_rate and self.target_rate != self.source_rate:
            import soxr

            resampler = soxr.ResampleStream(self.source_rate, self.target_rate, 1, dtype="float32", quality="HQ")
        source = self._sf_blocks() if self._sf is not None else None
        use_av = source is None
        yielded = False
        while True:
            if use_av:
                source = self._av_blocks()
                use_av = False
            try:
                data = next(source)
            except StopIteration:
                break
            except MemoryError:
                raise
            except Exception as e:
                if self._sf is not None and not yielded:  # as read_audio: PyAV when libsndfile fails
                    self._errors.append(_one_line(e))
                    self.close()
                    try:
                        self._av_rate()
                    except Exception:
                        raise AudioReadError(self.path, f"not a readable audio file ({self._errors[0]})") from None
                    use_av = True
                    continue
                reason = self._errors[0] if self._errors and not yielded else _one_line(e)
                raise AudioReadError(self.path, f"not a readable audio file ({reason})") from None
            if not np.isfinite(data).all():
                raise AudioReadError(self.path, "contains NaN or infinite samples")
            wav = (
                data.mean(axis=1, dtype=np.float64).astype(np.float32)
                if data.shape[1] > 1
                else np.ascontiguousarray(data[:, 0])
            )
            if resampler is not None:
                wav = resampler.resample_chunk(wav)
            if wav.size:
                yielded = True
                self.num_samples += wav.size
                yield wav
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if tail.size:
                self.num_samples += tail.size
                yield tail
        self.close()
        if self.num_samples == 0:
            raise AudioReadError(self.path, "no audio samples")


class AudioBlockWriter:
    """Writes a mono waveform block by block as WAV/FLAC/OGG with :func:`telucodec.data.audio_io.write_audio`'s rules
    (16-bit PCM by default, samples clipped to [-1, 1], NaN/inf refused, one-line TeluCodecError naming the file)
    and atomically: a temporary file in the same folder, renamed over `path` by :meth:`commit`."""

    def __init__(self, path, sample_rate: int, subtype: str | None = None):
        import soundfile as sf

        self.path = path = Path(path)
        self._done = False
        self._file = None
        ext = path.suffix.lower()
        if ext not in _WRITE_FORMATS:
            raise TeluCodecError(f"cannot write {path}: unsupported format '{ext or path.name}' (use .wav or .flac)")
        fmt, default_subtype = _WRITE_FORMATS[ext]
        self.sample_rate = int(sample_rate)
        if self.sample_rate <= 0:
            raise TeluCodecError(f"cannot write {path}: invalid sample rate {sample_rate}")
        if not path.parent.is_dir():
            raise TeluCodecError(f"cannot write {path}: folder {path.parent} does not exist")
        if path.is_dir():
            raise TeluCodecError(f"cannot write {path}: a folder of that name exists")
        self._tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(self._tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except PermissionError:
            raise TeluCodecError(f"cannot write {path}: permission denied") from None
        except OSError as e:
            raise TeluCodecError(f"cannot write {path}: {_one_line(e.strerror or e)}") from None
        self._file = os.fdopen(fd, "w+b")
        try:
            self._sf = sf.SoundFile(
                self._file,
                mode="w",
                samplerate=self.sample_rate,
                channels=1,
                subtype=subtype or default_subtype,
                format=fmt,
            )
        except BaseException as e:
            self.abort()
            raise TeluCodecError(f"cannot write {path}: {_one_line(e)}") from None
        self.num_samples = 0
        self._done = False

    def write(self, block) -> None:
        arr = np.asarray(block, dtype=np.float32).reshape(-1)
        if not arr.size:
            return
        if not np.isfinite(arr).all():
            self.abort()
            raise TeluCodecError(f"cannot write {self.path}: the waveform contains NaN or infinite samples")
        try:
            self._sf.write(np.clip(arr, -1.0, 1.0))
        except BaseException as e:
            self.abort()
            if isinstance(e, (OSError, RuntimeError, ValueError, TypeError)):
                raise TeluCodecError(f"cannot write {self.path}: {_one_line(e)}") from None
            raise
        self.num_samples += arr.size

    def commit(self) -> Path:
        if self.num_samples == 0:
            self.abort()
            raise TeluCodecError(f"cannot write {self.path}: the waveform is empty")
        try:
            self._sf.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException as e:
            self.abort()
            if isinstance(e, PermissionError):
                raise TeluCodecError(f"cannot write {self.path}: permission denied") from None
            if isinstance(e, (OSError, RuntimeError, ValueError, TypeError)):
                raise TeluCodecError(f"cannot write {self.path}: {_one_line(e)}") from None
            raise
        self._done = True
        return self.path

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        for close in (getattr(self, "_sf", None), self._file):
            try:
                if close is not None:
                    close.close()
            except Exception:
                pass
        try:
            os.unlink(self._tmp)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()  # a no-op after commit()
