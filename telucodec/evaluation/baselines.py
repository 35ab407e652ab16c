"""Classical speech codecs as baselines: Opus, AMR-NB (both through PyAV / FFmpeg) and Codec2.

Each baseline is a *round trip*: encode a waveform, decode it again, and hand back the decoded audio
**at the input sample rate, with exactly the input length, aligned sample-for-sample with the input**,
together with the number of bits the encoder actually produced.

>>> from telucodec import baselines
>>> baselines.available_baselines()            # doctest: +SKIP
['opus-6', 'opus-12', 'amrnb-4.75', 'amrnb-12.2']
>>> r = baselines.round_trip("opus-6", wav, 16000)  # doctest: +SKIP
>>> r.decoded.shape == wav.shape, r.bits_per_second > 0   # doctest: +SKIP
(True, True)

Bit accounting
--------------
``bits_per_second`` = 8 x (sum of the sizes of all packets the encoder emitted, flush included)
/ (input duration in seconds).  It counts the codec's own packets and nothing else:

* **Opus**: raw Opus packets (each starts with its one-byte TOC, which is part of the Opus packet
  as RFC 6716 defines it).  No Ogg/WebM/RTP container is written, so no container overhead is
  counted; an Ogg file would add roughly 27 bytes per page plus the two header pages.  The encoder
  runs in its default mode (libopus: VBR, ``application=audio``, complexity 10), so the rate spent
  scatters around the target.
* **AMR-NB**: the frames in the AMR storage format (RFC 4867 section 5, as FFmpeg emits them):
  every 20 ms frame carries a one-byte frame header and is padded to whole bytes, so mode 4.75
  costs 13 bytes per frame = 5.2 kbit/s and mode 12.2 costs 32 bytes = 12.8 kbit/s.  No ``#!AMR``
  file magic is counted.  DTX (silence suppression) is off.
* **Codec2**: the size of the ``.bit`` file ``c2enc`` writes (raw frames, no header).

Like the TeluCodec accounting (``.tlc`` payload plus its 32-byte header), the flush at the end of a
clip is paid for, so a short clip costs slightly more per second than a long one.

Alignment
---------
* **Opus**: the encoder's look-ahead ("pre-skip", 6.5 ms) is reported by the codec itself in the
  ``OpusHead`` extradata; handing that extradata to the decoder makes the decoder drop exactly those
  samples, so the output starts at the input's first sample.  FFmpeg's Opus decoders always output
  48 kHz; it is brought back to the input rate with a zero-phase polyphase filter
  (:func:`scipy.signal.resample_poly`), which adds no delay.
* **AMR-NB**: the codec's algorithmic look-ahead is 5 ms = 40 samples at 8 kHz (3GPP TS 26.090).
  FFmpeg does not tell the decoder about it, so :func:`round_trip` drops those 40 samples itself.
  This constant was checked by cross-correlation (:func:`estimate_delay`, band-limited to
  300-3400 Hz so that AMR's 80 Hz high-pass does not bias it) on synthetic and real speech: the peak
  is at 40 samples (sometimes 39) for both modes; ``tests/test_baselines.py`` re-checks it.
* **Codec2**: its delay is not documented per mode, so it is found per clip by the same
  cross-correlation (searched over 0-60 ms) and reported in ``note``.

Resampling to the codec's own rate (16 kHz for Opus, 8 kHz for AMR-NB and Codec2) and back uses the
same zero-phase polyphase filter.  AMR-NB and Codec2 are narrowband codecs: everything above 4 kHz is
lost by design, which the wideband metrics will (correctly) punish.
"""

from __future__ import annotations

import fractions
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from math import gcd

import numpy as np

from telucodec.errors import TeluCodecError

__all__ = [
    "BaselineResult",
    "Baseline",
    "BASELINES",
    "available_baselines",
    "unavailable_baselines",
    "round_trip",
    "estimate_delay",
    "resample",
    "encoder_report",
]

AMR_NB_LOOKAHEAD = 40  # samples at 8 kHz = 5 ms (3GPP TS 26.090); checked by estimate_delay in the tests


@dataclass
class BaselineResult:
    """One round trip through a classical codec.

    decoded          float32 1-D array at the input sample rate, same length as the input, aligned to it
    bits_per_second  bits the encoder produced (all packets, flush included) / input duration
    note             how the bits were counted and how the output was aligned
    """

    decoded: np.ndarray
    bits_per_second: float
    note: str
    name: str = ""
    label: str = ""
    nominal_kbps: float = float("nan")
    payload_bytes: int = 0
    delay_samples: int = 0  # delay removed, in samples at the codec's own rate


@dataclass(frozen=True)
class Baseline:
    name: str  # key for round_trip(), e.g. "opus-6"
    label: str  # for tables and plots, e.g. "Opus 6 kbps"
    family: str  # "opus", "amrnb" or "codec2"
    nominal_kbps: float  # the rate asked of the encoder
    codec_rate: int  # the sample rate the codec runs at


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in [
        Baseline("opus-6", "Opus 6 kbps", "opus", 6.0, 16000),
        Baseline("opus-8", "Opus 8 kbps", "opus", 8.0, 16000),
        Baseline("opus-12", "Opus 12 kbps", "opus", 12.0, 16000),
        Baseline("amrnb-4.75", "AMR-NB 4.75 kbps", "amrnb", 4.75, 8000),
        Baseline("amrnb-12.2", "AMR-NB 12.2 kbps", "amrnb", 12.2, 8000),
        Baseline("codec2-1200", "Codec2 1200", "codec2", 1.2, 8000),
        Baseline("codec2-3200", "Codec2 3200", "codec2", 3.2, 8000),
    ]
}


# ------------------------------------------------------------------------------------------ availability
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


@functools.cache
def _unavailable_reason(family: str) -> str | None:
    """None if the family can run here, else why not."""
    if family == "opus":
        if _av() is None:
            return "PyAV (package 'av') is not installed"
        if not (_has_av_codec("libopus", "w") and _has_av_codec("libopus", "r")):
            return "this PyAV/FFmpeg build has no libopus encoder/decoder"
        return None
    if family == "amrnb":
        if _av() is None:
            return "PyAV (package 'av') is not installed"
        if not _has_av_codec("libopencore_amrnb", "w"):
            return "this PyAV/FFmpeg build has no libopencore_amrnb encoder"
        if not (_has_av_codec("amrnb", "r") or _has_av_codec("libopencore_amrnb", "r")):
            return "this PyAV/FFmpeg build has no AMR-NB decoder"
        return None
    if family == "codec2":
        missing = [tool for tool in ("c2enc", "c2dec") if shutil.which(tool) is None]
        if missing:
            return f"{' and '.join(missing)} not found on PATH (Codec2 command-line tools)"
        return None
    return f"unknown codec family {family!r}"


def available_baselines() -> list[str]:
    """Names of the baselines that can run on this machine, in table order."""
    return [name for name, b in BASELINES.items() if _unavailable_reason(b.family) is None]


def unavailable_baselines() -> dict[str, str]:
    """{name: reason} for the baselines that cannot run here."""
    return {
        name: _unavailable_reason(b.family)
        for name, b in BASELINES.items()
        if _unavailable_reason(b.family) is not None
    }


def encoder_report() -> dict:
    """Which relevant encoders/decoders this PyAV build and PATH provide (for the benchmark's JSON)."""
    av = _av()
    report = {"av_version": getattr(av, "__version__", None) if av else None}
    if av is not None:
        report["libavcodec"] = ".".join(map(str, av.library_versions.get("libavcodec", ())))
        for name in ("libopus", "opus", "libopencore_amrnb", "amrnb", "libcodec2", "codec2"):
            report[f"av:{name}"] = {m: _has_av_codec(name, m) for m in ("w", "r")}
    for tool in ("c2enc", "c2dec"):
        report[f"path:{tool}"] = shutil.which(tool)
    return report


# ------------------------------------------------------------------------------------------------ helpers
def resample(wav: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Zero-phase polyphase resampling (no delay); float64 in, float64 out."""
    if from_rate == to_rate:
        return np.asarray(wav, dtype=np.float64)
    from scipy.signal import resample_poly

    g = gcd(int(from_rate), int(to_rate))
    return resample_poly(np.asarray(wav, dtype=np.float64), int(to_rate) // g, int(from_rate) // g)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to n samples."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])


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


def round_trip(name: str, wav, sample_rate: int) -> BaselineResult:
    """Encode and decode `wav` (1-D, float in [-1, 1]) with baseline `name` (see :data:`BASELINES`).

    Returns the decoded audio at `sample_rate`, same length as `wav`, aligned to it, and the bits spent.
    Raises TeluCodecError for an unknown or unavailable baseline, or a bad input.
    """
    key = str(name).lower()
    if key not in BASELINES:
        raise TeluCodecError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    spec = BASELINES[key]
    reason = _unavailable_reason(spec.family)
    if reason:
        raise TeluCodecError(f"baseline {key} is not available here: {reason}")
    if hasattr(wav, "detach"):
        wav = wav.detach().cpu().numpy()
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim != 1:
        x = np.squeeze(x)
        if x.ndim != 1:
            raise TeluCodecError(f"round_trip needs mono 1-D audio, got shape {np.shape(wav)}")
    if len(x) == 0:
        raise TeluCodecError("round_trip got empty audio")
    if not np.all(np.isfinite(x)):
        raise TeluCodecError("round_trip got audio with NaN or infinite samples")
    sample_rate = int(sample_rate)
    n = len(x)
    seconds = n / sample_rate
    xc = resample(x, sample_rate, spec.codec_rate)
    y, payload, delay, note = _FAMILIES[spec.family](xc, spec.codec_rate, spec.nominal_kbps)
    y = resample(y, spec.codec_rate, sample_rate)
    y = _fit_length(y, n).astype(np.float32)
    return BaselineResult(
        decoded=y,
        bits_per_second=8.0 * payload / seconds,
        note=note,
        name=key,
        label=spec.label,
        nominal_kbps=spec.nominal_kbps,
        payload_bytes=int(payload),
        delay_samples=int(delay),
    )
