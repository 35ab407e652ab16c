"""Shared by the benchmarks: constants, the synthetic test signal, machine facts, JSON and number formatting."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import numpy as np

TELUCODEC_KBPS = (1.5, 3.0, 6.0)
DEFAULT_OUT = "results/bench"
SR = 16000


# ------------------------------------------------------------------------------------------ test signal
def synthetic_speech(seconds: float = 3.0, sample_rate: int = SR, seed: int = 0) -> np.ndarray:
    """A deterministic speech-like test signal (float32, peak 0.7): no download, no TTS.

    Syllable-sized segments (80-250 ms) of three kinds: voiced (a glottal pulse train with a wandering
    f0 of 100-250 Hz and a -6 dB/octave tilt, through three formant resonators at random positions),
    fricatives (high-passed noise bursts) and near-silent pauses, each under a smooth envelope, plus a
    little background noise.  Good enough for codec plumbing, delays and bitrates; not a substitute
    for real speech when judging quality.
    """
    from scipy.signal import butter, lfilter, sosfilt

    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n)
    hp = butter(4, min(2500.0, 0.4 * sample_rate), "highpass", fs=sample_rate, output="sos")
    pos = int(0.05 * sample_rate)
    while pos < n:
        kind = rng.choice(3, p=[0.75, 0.15, 0.10])  # voiced, fricative, pause
        dur = min(int(rng.uniform(0.08, 0.25) * sample_rate), n - pos)
        if dur <= 1:
            break
        t = np.arange(dur) / sample_rate
        if kind == 0:
            f0 = rng.uniform(100, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6)))
            phase = np.cumsum(f0) / sample_rate
            src = (np.diff(np.floor(phase), prepend=np.floor(phase[0])) > 0).astype(float)
            src = lfilter([1.0], [1.0, -0.95], src) + 0.02 * rng.standard_normal(dur)
            seg = src
            formants = np.sort(rng.uniform([300, 900, 2200], [900, 2200, 3500]))
            for fc, bw in zip(formants, (80.0, 120.0, 200.0)):
                fc = min(fc, 0.45 * sample_rate)
                r = math.exp(-math.pi * bw / sample_rate)
                seg = lfilter([1 - r], [1.0, -2 * r * math.cos(2 * math.pi * fc / sample_rate), r * r], seg)
        elif kind == 1:
            seg = sosfilt(hp, rng.standard_normal(dur)) * 0.3
        else:
            seg = 0.001 * rng.standard_normal(dur)
        env = np.clip(np.sin(np.pi * np.arange(dur) / (dur - 1)), 0.0, 1.0) ** 0.5
        out[pos : pos + dur] += seg / (np.max(np.abs(seg)) + 1e-9) * env * rng.uniform(0.3, 0.9)
        pos += dur
    out += 1e-3 * rng.standard_normal(n)
    return (0.7 * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


# --------------------------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str):
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def machine_info() -> dict:
    """CPU model and core count, GPU (if any), and the versions of everything that affects the numbers."""
    import torch

    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads_default": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for pkg in ("numpy", "scipy", "av", "pesq", "pystoi", "encodec", "torchaudio"):
        info[pkg] = _version(pkg)
    try:
        from telucodec import __version__

        info["telucodec"] = __version__
    except Exception:
        info["telucodec"] = None
    return info


def _command(argv) -> str:
    return "python -m telucodec bench " + " ".join(str(a) for a in argv) if argv is not None else None


def _write_json(path: Path, obj) -> None:
    def default(o):
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        return str(o)

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(obj), indent=1, default=default) + "\n")
    os.replace(tmp, path)


def _fmt(x, digits=2):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def _nanmean(values):
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")
