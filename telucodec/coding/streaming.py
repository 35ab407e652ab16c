"""Any length in bounded memory: chunked and streaming encode/decode.

The codec is a stack of convolutions (and, with the vocos head, frame-rate ConvNeXt blocks and an inverse STFT;
with envelope codebooks, an STFT analysis and re-synthesis). None of it looks further than a fixed number of
samples or frames to either side, so a long input can be coded one piece at a time: give each piece enough context
on both sides (at least the model's receptive field), keep only its middle, and the result is the one the model
gives on the whole file at once: the same codes and, to float rounding, the same samples (see Float rounding).

The receptive field is measured (:func:`telucodec.coding.receptive_field.context`), so it covers any head,
envelope codebooks, the post-filter and whatever is added later, as long as it stays local.

Two things in the whole-file decoder are not local, and :mod:`telucodec.coding.piece_synthesis` reproduces them:
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
Whole arrays in pieces: :mod:`telucodec.coding.chunked`; audio files in blocks: :mod:`telucodec.coding.audio_blocks`.

Float rounding: PyTorch picks convolution kernels by tensor shape (oneDNN or its own, and oneDNN's blocking),
so the same frame computed inside a piece and inside the whole file can differ in the last bits (~1e-7 relative),
as two whole files of different lengths can. Samples then agree to ~1e-5; a code differs only where two codewords
are that close, which is rare: 0 of 180,000 codes differed on 5 minutes of Common Voice Telugu with the shipped
model at 3, 10 and 20 s pieces; 2 of 3,000 (residual stages 8 and 9) on one 5-s noise clip cut into 0.7-s pieces.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from telucodec.coding.piece_synthesis import _synthesise, _Totals
from telucodec.coding.receptive_field import context
from telucodec.errors import TeluCodecError

__all__ = ["DEFAULT_CHUNK_SECONDS", "chunk_frames", "StreamEncoder", "StreamDecoder", "measure_delay"]

#: Seconds of audio per piece on the chunked path. Working memory grows with it (the shipped model: about 100 MB
#: above its 630 MB start-up at 20 s, results/bench/long/); speed was about flat from 5 to 20 s.
DEFAULT_CHUNK_SECONDS = 20.0


def chunk_frames(model, chunk_seconds: float | None = None) -> int | None:
    """Frames per piece; None = one piece."""
    if chunk_seconds is None:
        chunk_seconds = DEFAULT_CHUNK_SECONDS
    if not chunk_seconds or chunk_seconds == math.inf:
        return None
    if chunk_seconds < 0 or not math.isfinite(chunk_seconds):
        raise TeluCodecError(f"chunk_seconds must be positive (or 0 for one piece), got {chunk_seconds}")
    return max(1, int(round(chunk_seconds * model.config.frame_rate)))


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
