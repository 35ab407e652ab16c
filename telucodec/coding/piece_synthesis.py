"""The decoder's synthesis for one piece of a long stream, equal to the whole-file decoder's on that piece.

Two things in the whole-file decoder are not local, and this module reproduces them instead of changing them:
the envelope codebooks (:meth:`telucodec.codec.envelope.EnvelopeCoder.impose`) and the envelope post-filter interpolate
their per-frame gains to the STFT frames with ``F.interpolate(size=...)``, whose step is ``frames / stft_frames``
(slightly under 1/2 and 1), so where a gain lands drifts by up to half a code frame over a long file and depends
on the file's length. Given the stream's length (:class:`_Totals`), a piece uses the same global step, which makes
it identical to the whole-file decoder; a live stream of unknown length uses the step's limit (exactly 1/2 and 1,
the time-aligned mapping). Used by :mod:`telucodec.coding.streaming` and :mod:`telucodec.coding.receptive_field`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
