"""Reading and writing audio files at the I/O boundary.

Everything inside TeluCodec works on mono float32 waveforms at one sample rate (16 kHz by
default). This module turns whatever is on disk into that, and back:

* :func:`read_audio` reads WAV/FLAC/OGG (and MP3, where libsndfile supports it) with
  ``soundfile``; anything libsndfile cannot open is tried again with PyAV (FFmpeg), which
  also covers MP3 on older libsndfile builds and M4A/Opus/WebM. Channels are averaged to
  mono and the result is resampled (``soxr`` when installed, else ``scipy``'s polyphase
  resampler).
* :func:`write_audio` writes WAV/FLAC/OGG atomically: a temporary file in the same folder,
  renamed over the target with :func:`os.replace`, so a crash never leaves half a file.

Bad input never escapes as a library traceback: every problem becomes an
:class:`AudioReadError` (a :class:`~telucodec.errors.TeluCodecError`) whose one-line message
names the file and the reason.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np

from telucodec.errors import TeluCodecError

__all__ = ["AUDIO_EXTENSIONS", "AudioReadError", "read_audio", "write_audio", "resample"]

#: Extensions :func:`telucodec.data.folders.scan_audio_folder` collects (lower case, with the dot).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# Containers libsndfile cannot read at all: go straight to PyAV for these.
_AV_ONLY = {".m4a", ".aac", ".mp4", ".webm", ".opus", ".wma", ".mka"}

_WRITE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


class AudioReadError(TeluCodecError):
    """A file could not be turned into audio. ``path`` and a short ``reason`` are kept apart
    so that :mod:`telucodec.data.folders` can word its skip warning as ``skipping <path>: <reason>``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = _one_line(reason)
        super().__init__(f"cannot read audio {self.path}: {self.reason}")


def _one_line(text: Any, limit: int = 200) -> str:
    """Collapse an error text from a library into one short line (without the file name
    that libsndfile repeats: ``Error opening '<path>': ...``)."""
    line = " ".join(str(text).split())
    line = re.sub(r"^Error opening .*?': ", "", line)
    # libsndfile's wording when its MP3 decoder rejects the data is misleading
    line = line.replace(
        "File does not exist or is not a regular file (possibly a pipe?).", "corrupt or unrecognised data"
    )
    if not line:
        line = "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- resampling


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D float waveform from ``orig_sr`` to ``target_sr`` Hz (float32 out).

    Uses ``soxr`` (high quality, any ratio) when installed; otherwise ``scipy.signal``'s
    polyphase filter, or an FFT resampler when the rational ratio is awkward.
    """
    wav = np.asarray(wav, dtype=np.float32)
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr or wav.size == 0:
        return wav.copy()
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr comes with librosa
        soxr = None
    if soxr is not None:
        return np.asarray(soxr.resample(wav, orig_sr, target_sr, quality="HQ"), dtype=np.float32)
    from scipy import signal  # pragma: no cover

    g = math.gcd(orig_sr, target_sr)
    up, down = target_sr // g, orig_sr // g
    if max(up, down) <= 1000:
        out = signal.resample_poly(wav, up, down)
    else:
        out = signal.resample(wav, int(round(wav.size * target_sr / orig_sr)))
    return np.asarray(out, dtype=np.float32)


# --------------------------------------------------------------------------- loudness


def loudness_lufs(wav: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, LUFS) through ``pyloudnorm``; -inf for silence. Clips shorter
    than the 400 ms gating block are measured by their mean-square level on the same scale (no K-weighting)."""
    wav = np.asarray(wav, dtype=np.float64)
    if wav.size < int(0.4 * sample_rate):
        ms = float(np.mean(wav**2)) if wav.size else 0.0
        return -0.691 + 10 * math.log10(ms) if ms > 0 else float("-inf")
    import pyloudnorm

    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(wav))


def normalise_loudness(wav: np.ndarray, sample_rate: int, target_lufs: float = -23.0, peak: float = 0.99) -> np.ndarray:
    """Scale a clip to `target_lufs` (EBU R 128's -23 LUFS by default), then down if its peak would pass
    `peak`. Silent clips are returned unchanged. float32 out."""
    wav = np.asarray(wav, dtype=np.float32)
    level = loudness_lufs(wav, sample_rate)
    if not math.isfinite(level):
        return wav.copy()
    gain = 10 ** ((target_lufs - level) / 20)
    top = float(np.abs(wav).max()) * gain
    if top > peak:
        gain *= peak / top
    return (wav * gain).astype(np.float32)


# --------------------------------------------------------------------------- reading


def _check_file(path: Path) -> None:
    """Raise AudioReadError for problems the OS can tell us about, before any decoder runs."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioReadError(path, "file not found") from None
    except PermissionError:
        raise AudioReadError(path, "permission denied") from None
    except OSError as e:
        raise AudioReadError(path, e.strerror or e) from None
    if path.is_dir():
        raise AudioReadError(path, "is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise AudioReadError(path, "not a regular file")
    if st.st_size == 0:
        raise AudioReadError(path, "empty file (0 bytes)")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        raise AudioReadError(path, "permission denied") from None
    except OSError as e:
        raise AudioReadError(path, e.strerror or e) from None


_QUIET_LOCK = threading.Lock()
_QUIET = {"depth": 0, "saved": None}


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C libraries (libsndfile's MP3 decoder) that print straight to file descriptor 2, so a bad file
    produces our one-line warning and nothing else. Safe with several reading threads: the first one in
    redirects fd 2, the last one out restores it."""
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            try:
                saved = os.dup(2)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)
                _QUIET["saved"] = saved
            except OSError:
                _QUIET["saved"] = None
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0 and _QUIET["saved"] is not None:
                os.dup2(_QUIET["saved"], 2)
                os.close(_QUIET["saved"])
                _QUIET["saved"] = None


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with _quiet_stderr():
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data, int(sr)


def av_audio_stream(container):
    """(the first audio stream of an open PyAV container, its sample rate); ValueError if there is none."""
    if not container.streams.audio:
        raise ValueError("no audio stream")
    stream = container.streams.audio[0]
    sr = int(stream.codec_context.sample_rate or stream.rate or 0)
    if sr <= 0:
        raise ValueError("unknown sample rate")
    return stream, sr


def _read_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(path), mode="r") as container:
        stream, sr = av_audio_stream(container)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return data.astype(np.float32, copy=False)[:, None], sr


def read_audio(path: str | os.PathLike, sample_rate: int | None = 16000) -> np.ndarray:
    """Read an audio file as a mono float32 1-D array at ``sample_rate`` Hz.

    Channels are averaged; the result is resampled when the file's rate differs
    (``sample_rate=None`` keeps the file's own rate). Integer PCM of any width comes back
    scaled to [-1, 1); float files are returned as stored (they may exceed 1).

    Raises :class:`AudioReadError` (a ``TeluCodecError``) with a one-line message naming
    the file when it is missing, a folder, unreadable, empty, not audio, or holds NaN/inf.
    """
    path = Path(path)
    _check_file(path)
    ext = path.suffix.lower()
    errors: list[str] = []
    data = None
    sr = 0
    if ext not in _AV_ONLY:
        try:
            data, sr = _read_soundfile(path)
        except MemoryError:
            raise
        except Exception as e:  # libsndfile's errors are many and loosely typed
            errors.append(_one_line(e))
    if data is None:
        try:
            data, sr = _read_av(path)
        except ImportError:
            errors.append("PyAV is not installed (pip install av)")
        except MemoryError:
            raise
        except Exception as e:
            errors.append(_one_line(e))
    if data is None:
        reason = errors[0] if errors else "unknown error"
        raise AudioReadError(path, f"not a readable audio file ({reason})")
    if sr <= 0:
        raise AudioReadError(path, f"invalid sample rate {sr}")
    if data.shape[0] == 0 or data.size == 0:
        raise AudioReadError(path, "no audio samples")
    if not np.isfinite(data).all():
        raise AudioReadError(path, "contains NaN or infinite samples")
    wav = data.mean(axis=1, dtype=np.float64).astype(np.float32) if data.shape[1] > 1 else data[:, 0]
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    if sample_rate is not None and int(sample_rate) != sr:
        wav = resample(wav, sr, int(sample_rate))
    return wav


# --------------------------------------------------------------------------- writing


def _to_mono_numpy(wav: Any) -> np.ndarray:
    if hasattr(wav, "detach"):  # torch tensor, without importing torch here
        wav = wav.detach().cpu().float().numpy()
    arr = np.asarray(wav, dtype=np.float32)
    if arr.ndim > 1:
        squeezed = arr.squeeze()
        if squeezed.ndim != 1 and not (squeezed.ndim == 0 and arr.size == 1):
            raise ValueError(f"expected a mono waveform, got shape {tuple(arr.shape)}")
        arr = squeezed.reshape(-1)
    return arr.reshape(-1)


def write_audio(
    path: str | os.PathLike, wav: Any, sample_rate: int, subtype: str | None = None, *, fsync: bool = True
) -> Path:
    """Write a mono waveform (numpy or torch; shape (T,), (1, T) or (1, 1, T)) to
    ``path`` as WAV, FLAC or OGG, chosen by the extension. Samples are clipped to [-1, 1];
    integer formats default to 16-bit PCM (``subtype`` overrides, e.g. ``"PCM_24"``).

    The file appears atomically: it is written to a temporary name in the same folder and
    renamed over ``path``. Returns ``path``. Raises ``TeluCodecError`` with a one-line
    message for an unsupported extension, a missing folder, no permission, or NaN/inf input.
    """
    import soundfile as sf

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITE_FORMATS:
        raise TeluCodecError(f"cannot write {path}: unsupported format '{ext or path.name}' (use .wav or .flac)")
    fmt, default_subtype = _WRITE_FORMATS[ext]
    try:
        arr = _to_mono_numpy(wav)
    except (TypeError, ValueError) as e:
        raise TeluCodecError(f"cannot write {path}: {_one_line(e)}") from None
    if arr.size == 0:
        raise TeluCodecError(f"cannot write {path}: the waveform is empty")
    if not np.isfinite(arr).all():
        raise TeluCodecError(f"cannot write {path}: the waveform contains NaN or infinite samples")
    sample_rate = int(sample_rate)
    if sample_rate <= 0:
        raise TeluCodecError(f"cannot write {path}: invalid sample rate {sample_rate}")
    arr = np.clip(arr, -1.0, 1.0)

    parent = path.parent
    if not parent.is_dir():
        raise TeluCodecError(f"cannot write {path}: folder {parent} does not exist")
    if path.is_dir():
        raise TeluCodecError(f"cannot write {path}: a folder of that name exists")
    tmp = parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)  # honours the umask
    except PermissionError:
        raise TeluCodecError(f"cannot write {path}: permission denied") from None
    except OSError as e:
        raise TeluCodecError(f"cannot write {path}: {_one_line(e.strerror or e)}") from None
    try:
        with os.fdopen(fd, "w+b") as f:
            sf.write(f, arr, sample_rate, subtype=subtype or default_subtype, format=fmt)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, PermissionError):
            raise TeluCodecError(f"cannot write {path}: permission denied") from None
        if isinstance(e, (OSError, RuntimeError, ValueError, TypeError)):
            raise TeluCodecError(f"cannot write {path}: {_one_line(e)}") from None
        raise
    return path
