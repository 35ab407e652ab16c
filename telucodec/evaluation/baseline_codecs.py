"""Running each classical codec: Opus and AMR-NB through PyAV (FFmpeg), Codec2 through ``c2enc``/``c2dec``.

Each family's runner encodes and decodes a clip at the codec's own sample rate and returns the decoded audio with
the codec's delay removed, the payload bytes the encoder produced and a note on how both were found. The zero-phase
resampling and the cross-correlation delay estimate they use live here too.
:func:`telucodec.evaluation.baselines.round_trip` is the public entry point, and its docstring says how the bits
are counted and the output aligned.
"""

from __future__ import annotations

import fractions
import os
import subprocess
import tempfile
from math import gcd

import numpy as np

from telucodec.errors import TeluCodecError

__all__ = ["AMR_NB_LOOKAHEAD", "estimate_delay", "resample"]

AMR_NB_LOOKAHEAD = 40  # samples at 8 kHz = 5 ms (3GPP TS 26.090); checked by estimate_delay in the tests


def _av():
    try:
        import av  # noqa: F401
    except ImportError:
        return None
    return av


def _has_av_codec(name: str, mode: str) -> bool:
    av = _av()
    if av is None:
        return False
    try:
        av.codec.Codec(name, mode)
        return True
    except Exception:
        return False


# ------------------------------------------------------------------------------------------------ helpers
def resample(wav: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Zero-phase polyphase resampling (no delay); float64 in, float64 out."""
    if from_rate == to_rate:
        return np.asarray(wav, dtype=np.float64)
    from scipy.signal import resample_poly

    g = gcd(int(from_rate), int(to_rate))
    return resample_poly(np.asarray(wav, dtype=np.float64), int(to_rate) // g, int(from_rate) // g)


def estimate_delay(
    ref: np.ndarray, est: np.ndarray, sample_rate: int, max_lag: int, min_lag: int = 0, band=(300.0, 3400.0)
) -> tuple[int, float]:
    """Lag L (samples) maximising the normalised correlation of est[n + L] with ref[n], L in [min_lag, max_lag].

    Both signals are band-passed (default 300-3400 Hz, the band every codec here keeps) before
    correlating.  Returns (lag, peak normalised correlation in [-1, 1]).
    """
    from scipy.signal import butter, sosfiltfilt

    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    hi = min(band[1], 0.45 * sample_rate)
    sos = butter(4, (band[0], hi), "bandpass", fs=sample_rate, output="sos")
    r = sosfiltfilt(sos, ref) if len(ref) > 30 else ref
    e = sosfiltfilt(sos, est) if len(est) > 30 else est
    n = len(r)
    best_lag, best = min_lag, -np.inf
    for lag in range(min_lag, max_lag + 1):
        a = r[max(0, -lag) : n]
        b = e[max(0, lag) : max(0, lag) + len(a)]
        m = min(len(a), len(b))
        if m < 16:
            continue
        a, b = a[:m], b[:m]
        den = np.linalg.norm(a) * np.linalg.norm(b)
        c = float(a @ b / den) if den > 0 else 0.0
        if c > best:
            best_lag, best = lag, c
    return best_lag, (best if np.isfinite(best) else 0.0)


def _encode_av(codec_name: str, samples: np.ndarray, rate: int, bit_rate: int, fmt: str):
    """Feed `samples` (1-D float64 in [-1, 1]) to a PyAV encoder; return (codec context, packets)."""
    import av

    ctx = av.CodecContext.create(codec_name, "w")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    ctx.format = fmt
    ctx.bit_rate = int(bit_rate)
    ctx.time_base = fractions.Fraction(1, rate)
    ctx.open()
    frame_size = ctx.frame_size or 960
    x = np.clip(samples, -1.0, 1.0)
    x = (np.round(x * 32767)).astype(np.int16) if fmt == "s16" else x.astype(np.float32)
    packets = []
    for pts, start in enumerate(range(0, len(x), frame_size)):
        chunk = x[start : start + frame_size]
        if len(chunk) < frame_size:
            chunk = np.concatenate([chunk, np.zeros(frame_size - len(chunk), dtype=chunk.dtype)])
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = pts * frame_size
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))  # flush
    return ctx, packets


def _decode_av(decoder, packets) -> tuple[np.ndarray, int]:
    """Decode packets; return (float64 mono samples in [-1, 1], output sample rate)."""
    out, rate = [], None
    for packet in packets:
        for frame in decoder.decode(packet):
            out.append(_frame_to_float(frame))
            rate = frame.sample_rate
    try:
        for frame in decoder.decode(None):
            out.append(_frame_to_float(frame))
            rate = frame.sample_rate
    except Exception:  # some decoders do not support an explicit flush
        pass
    if not out:
        raise TeluCodecError("the decoder produced no audio")
    return np.concatenate(out), rate


def _frame_to_float(frame) -> np.ndarray:
    a = frame.to_ndarray()
    name = frame.format.name
    if name.startswith("s16"):
        a = a.astype(np.float64) / 32768.0
    elif name.startswith("s32"):
        a = a.astype(np.float64) / 2147483648.0
    else:
        a = a.astype(np.float64)
    if frame.format.is_planar:
        return a[0]
    return a.reshape(-1, len(frame.layout.channels))[:, 0]


# ----------------------------------------------------------------------------------------------- codecs
def _opus(x: np.ndarray, rate: int, kbps: float):
    import av

    enc, packets = _encode_av("libopus", x, rate, int(kbps * 1000), "flt")
    payload = sum(p.size for p in packets)
    dec = av.CodecContext.create("libopus", "r")
    dec.extradata = enc.extradata  # OpusHead: carries the pre-skip, which the decoder then drops
    pre_skip = int.from_bytes(bytes(enc.extradata)[10:12], "little") if enc.extradata else 0
    y, out_rate = _decode_av(dec, packets)
    y = resample(y, out_rate, rate)
    note = (
        f"libopus VBR target {kbps:g} kbit/s at {rate} Hz, 20 ms frames; bits = raw Opus packets "
        f"(no container); pre-skip {pre_skip} samples at 48 kHz removed by the decoder from OpusHead; "
        f"decoder output {out_rate} Hz resampled to {rate} Hz"
    )
    return y, payload, 0, note


def _amrnb(x: np.ndarray, rate: int, kbps: float):
    import av

    enc, packets = _encode_av("libopencore_amrnb", x, rate, int(round(kbps * 1000)), "s16")
    payload = sum(p.size for p in packets)
    dec_name = "amrnb" if _has_av_codec("amrnb", "r") else "libopencore_amrnb"
    dec = av.CodecContext.create(dec_name, "r")
    dec.sample_rate = rate
    dec.layout = "mono"
    y, out_rate = _decode_av(dec, packets)
    y = resample(y, out_rate, rate)[AMR_NB_LOOKAHEAD:]
    note = (
        f"libopencore_amrnb mode {kbps:g} kbit/s at 8 kHz, DTX off, decoder {dec_name}; bits = AMR "
        f"storage-format frames incl. 1-byte frame header; {AMR_NB_LOOKAHEAD}-sample (5 ms) look-ahead removed"
    )
    return y, payload, AMR_NB_LOOKAHEAD, note


def _codec2(x: np.ndarray, rate: int, kbps: float):
    mode = str(int(round(kbps * 1000)))
    pcm = (np.round(np.clip(x, -1, 1) * 32767)).astype("<i2")
    with tempfile.TemporaryDirectory(prefix="telucodec-c2-") as tmp:
        raw_in, bits, raw_out = (os.path.join(tmp, n) for n in ("in.raw", "out.bit", "out.raw"))
        pcm.tofile(raw_in)
        for cmd in (["c2enc", mode, raw_in, bits], ["c2dec", mode, bits, raw_out]):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise TeluCodecError(f"{' '.join(cmd[:2])} failed: {proc.stderr.strip()[:200]}")
        payload = os.path.getsize(bits)
        y = np.fromfile(raw_out, dtype="<i2").astype(np.float64) / 32768.0
    lag, corr = estimate_delay(x, y, rate, max_lag=int(0.06 * rate))
    y = y[lag:]
    note = (
        f"Codec2 {mode} via c2enc/c2dec at 8 kHz; bits = .bit file size; delay {lag} samples found by "
        f"cross-correlation (peak {corr:.2f})"
    )
    return y, payload, lag, note


_FAMILIES = {"opus": _opus, "amrnb": _amrnb, "codec2": _codec2}
