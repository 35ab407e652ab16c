"""Classical speech codecs as baselines: Opus, AMR-NB (both through PyAV / FFmpeg) and Codec2.

Each baseline is a *round trip*: encode a waveform, decode it again, and hand back the decoded audio
**at the input sample rate, with exactly the input length, aligned sample-for-sample with the input**,
together with the number of bits the encoder actually produced.

>>> from telucodec.evaluation import baselines
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
  This constant was checked by cross-correlation
  (:func:`~telucodec.evaluation.baseline_codecs.estimate_delay`, band-limited to 300-3400 Hz so that AMR's
  80 Hz high-pass does not bias it) on synthetic and real speech: the peak
  is at 40 samples (sometimes 39) for both modes; ``tests/test_baselines.py`` re-checks it.
* **Codec2**: its delay is not documented per mode, so it is found per clip by the same
  cross-correlation (searched over 0-60 ms) and reported in ``note``.

Resampling to the codec's own rate (16 kHz for Opus, 8 kHz for AMR-NB and Codec2) and back uses the
same zero-phase polyphase filter.  AMR-NB and Codec2 are narrowband codecs: everything above 4 kHz is
lost by design, which the wideband metrics will (correctly) punish.

This module holds the catalogue, the availability checks and :func:`round_trip`; each codec family is run by
:mod:`telucodec.evaluation.baseline_codecs`.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass

import numpy as np

from telucodec.errors import TeluCodecError
from telucodec.evaluation.baseline_codecs import _FAMILIES, _av, _has_av_codec, resample

__all__ = [
    "BaselineResult",
    "Baseline",
    "BASELINES",
    "available_baselines",
    "unavailable_baselines",
    "round_trip",
    "encoder_report",
]


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


# -------------------------------------------------------------------------------------------- round trip
def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to n samples."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])


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
