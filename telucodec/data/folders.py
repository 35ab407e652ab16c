"""Training data: find audio files, load them robustly, split by file, load a dataset.

A real speech folder always holds some bad files. Here every file that cannot be used is
skipped with exactly one ``BadAudioWarning`` of the form ``skipping <path>: <reason>``:
unreadable, not audio, empty, too short, silent, or containing NaN/inf samples. Clipped
audio and audio with a DC offset are kept (the DC offset is removed). Only when *nothing*
is usable does loading fail, with a one-line :class:`~telucodec.errors.DataError`.

* :func:`scan_audio_folder` - every .wav/.flac/.ogg/.mp3 under a folder, in a fixed order
  (Common Voice ``clips/*.mp3`` and OpenSLR SLR66 ``te_in_female/*.wav`` layouts work as they
  are; symbolic-link loops cannot hang it).
* :func:`load_clips` - read, mix to mono, resample, remove DC, skip the bad ones.
* :func:`split_by_file` - train/validation split by a stable hash of each file's relative
  path, so adding files never moves the others between splits.
* :func:`load_dataset` - all of the above from ``--data_dir`` or the embedded corpus.

Cropping the loaded clips into fixed-length segments is :class:`telucodec.data.crops.CropDataset`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from telucodec.data.audio_io import AUDIO_EXTENSIONS, AudioReadError, read_audio
from telucodec.errors import BadAudioWarning, DataError, TeluCodecError

__all__ = [
    "DataSpec",
    "spec_for",
    "ClipList",
    "scan_audio_folder",
    "load_clips",
    "split_by_file",
    "load_dataset",
    "SILENCE_PEAK",
    "SILENCE_RMS",
]

#: A clip whose peak (after DC removal) is below this is "silent".
SILENCE_PEAK = 1e-4
#: ... or whose RMS is below this.
SILENCE_RMS = 1e-5

# Defaults for attributes a config object may lack.
_DEFAULTS = {
    "sample_rate": 16000,
    "segment_seconds": 1.0,
    "corpus_minutes": 12.0,  # the full preset's corpus
    "val_fraction": 0.1,
    "seed": 0,
    "split_seed": 0,  # the split does not follow the training seed: held-out files stay held out
    "corpus_seed": 0,
    "min_seconds": 0.25,
}


class DataSpec(Protocol):
    """What :func:`load_dataset` reads from a config (missing attributes take defaults:
    16000 Hz, 1.0 s segments, 12 corpus minutes, 10 % validation, seed 0)."""

    sample_rate: int
    segment_seconds: float
    corpus_minutes: float
    val_fraction: float
    seed: int


def _cfg(config: Any, name: str):
    value = getattr(config, name, None) if config is not None else None
    return _DEFAULTS[name] if value is None else value


# --------------------------------------------------------------------------- scanning


def scan_audio_folder(root: str | os.PathLike) -> list[Path]:
    """All audio files (.wav .flac .ogg .mp3, any case) under ``root``, recursively.

    Sorted by relative path (POSIX form), so the order is the same on every machine.
    Symbolic links to folders are followed, but each real folder is visited once, so link
    loops cannot hang the scan; a file reachable twice is listed once. Hidden files and
    folders (names starting with ".") are ignored. Raises ``DataError`` if ``root`` is not
    a folder.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"--data_dir must be a folder of audio files, got a file: {root}")
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    found: list[tuple[str, Path]] = []

    def on_error(err: OSError) -> None:
        warnings.warn(f"skipping {err.filename}: cannot list folder ({err.strerror})", BadAudioWarning, stacklevel=3)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) not in seen_dirs
        )
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            full = Path(dirpath) / name
            real_file = os.path.realpath(full)
            if real_file in seen_files:
                continue
            seen_files.add(real_file)
            found.append((full.relative_to(root).as_posix(), full))
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


# --------------------------------------------------------------------------- loading


def _check_clip(wav: np.ndarray, sample_rate: int, min_seconds: float) -> str | None:
    """Why a decoded clip is unusable, or None."""
    seconds = wav.size / sample_rate
    if wav.size == 0:
        return "no audio samples"
    if seconds < min_seconds:
        return f"too short ({seconds:.3f} s < {min_seconds:g} s)"
    peak = float(np.abs(wav).max())
    if peak < SILENCE_PEAK:
        return f"silent (peak {peak:.1e})"
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms < SILENCE_RMS:
        return f"silent (RMS {rms:.1e})"
    return None


def _load_one(path: Path, sample_rate: int, min_seconds: float, remove_dc: bool):
    """(wav, None) or (None, reason). Never raises for bad input."""
    try:
        wav = read_audio(path, sample_rate)
    except AudioReadError as e:
        return None, e.reason
    except TeluCodecError as e:  # pragma: no cover - read_audio raises AudioReadError
        return None, str(e)
    if remove_dc and wav.size:
        wav = wav - np.float32(wav.mean(dtype=np.float64))
    reason = _check_clip(wav, sample_rate, min_seconds)
    if reason is not None:
        return None, reason
    peak = float(np.abs(wav).max())
    if peak > 1.0:  # float files can exceed full scale; bring them back into [-1, 1]
        wav = wav / np.float32(peak)
    return np.ascontiguousarray(wav, dtype=np.float32), None


def load_clips(
    paths: Iterable[str | os.PathLike],
    sample_rate: int = 16000,
    min_seconds: float = 0.25,
    *,
    remove_dc: bool = True,
    workers: int | None = None,
) -> list[tuple[Path, np.ndarray]]:
    """Read each file as mono float32 at ``sample_rate``: ``[(path, wav), ...]`` in input order.

    Files that are unreadable, not audio, empty, shorter than ``min_seconds``, silent
    (peak < 1e-4 or RMS < 1e-5) or contain NaN/inf are skipped, each with one
    ``BadAudioWarning("skipping <path>: <reason>")``. Stereo is averaged, any sample rate
    is resampled, 8/16/24/32-bit and float files are all accepted. The DC offset (mean)
    of every clip is subtracted (``remove_dc=False`` keeps it); clipped audio is kept;
    float files louder than full scale are scaled down to peak 1.
    """
    paths = [Path(p) for p in paths]
    workers = workers or min(4, os.cpu_count() or 1)
    job = lambda p: _load_one(p, sample_rate, min_seconds, remove_dc)  # noqa: E731
    if workers > 1 and len(paths) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # decoding releases the GIL
            results = list(pool.map(job, paths))
    else:
        results = [job(p) for p in paths]
    out = []
    for path, (wav, reason) in zip(paths, results):  # warn in order, from this thread
        if wav is None:
            warnings.warn(f"skipping {path}: {reason}", BadAudioWarning, stacklevel=2)
        else:
            out.append((path, wav))
    return out


# --------------------------------------------------------------------------- splitting


def _unit_hash(seed: int, key: str) -> float:
    h = hashlib.blake2b(f"{int(seed)}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def _relative_keys(paths: Sequence[Path], root: str | os.PathLike | None) -> list[str]:
    if root is None:
        parents = [os.path.abspath(p.parent) for p in paths]
        root = os.path.commonpath(parents) if parents else "."
    keys = []
    for p in paths:
        try:
            keys.append(Path(os.path.relpath(os.path.abspath(p), os.path.abspath(root))).as_posix())
        except ValueError:  # another drive on Windows
            keys.append(Path(p).as_posix())
    return keys


def split_by_file(
    paths: Sequence[str | os.PathLike],
    val_fraction: float = 0.1,
    seed: int = 0,
    *,
    root: str | os.PathLike | None = None,
) -> tuple[list[Path], list[Path]]:
    """Split files into (train, val), keeping input order within each.

    A file goes to validation when a stable hash of (seed, its path relative to ``root``)
    falls below ``val_fraction``; ``root`` defaults to the files' common folder. A file's
    side therefore never changes when other files are added or removed. With two or more
    files and ``val_fraction > 0`` at least one file is in each split.
    """
    paths = [Path(p) for p in paths]
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not paths:
        return [], []
    u = [_unit_hash(seed, k) for k in _relative_keys(paths, root)]
    is_val = [x < val_fraction for x in u]
    if len(paths) >= 2 and val_fraction > 0:
        if not any(is_val):
            is_val[min(range(len(u)), key=u.__getitem__)] = True
        if all(is_val):
            is_val[max(range(len(u)), key=u.__getitem__)] = False
    train = [p for p, v in zip(paths, is_val) if not v]
    val = [p for p, v in zip(paths, is_val) if v]
    return train, val


# --------------------------------------------------------------------------- datasets


class ClipList(list):
    """A list of float32 1-D clips (what the trainer crops from), with ``paths``,
    ``names`` and ``sample_rate`` attributes."""

    def __init__(self, items: Iterable[tuple[Path, np.ndarray]] = (), sample_rate: int = 16000, source: str = ""):
        items = list(items)
        super().__init__(w for _, w in items)
        self.paths: list[Path] = [Path(p) for p, _ in items]
        self.names: list[str] = [p.name for p in self.paths]
        self.sample_rate = int(sample_rate)
        self.source = source

    @property
    def total_seconds(self) -> float:
        return sum(len(c) for c in self) / self.sample_rate

    def __repr__(self) -> str:
        return f"ClipList({len(self)} clips, {self.total_seconds / 60:.1f} min at {self.sample_rate} Hz, {self.source})"


# --------------------------------------------------------------------------- high level

_cache: dict = {}


def _file_signature(paths: Sequence[Path]) -> tuple:
    sig = []
    for p in paths:
        try:
            st = p.stat()
            sig.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            sig.append((str(p), -1, -1))
    return tuple(sig)


class _Spec:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def spec_for(codec_config, train_config=None) -> DataSpec:
    """The data settings of a model and training configuration (or pass a preset name as the first argument):
    what :func:`load_dataset` reads."""
    if isinstance(codec_config, str):
        from telucodec.config import preset

        p = preset(codec_config)
        codec_config, train_config = p.codec, p.train
    return _Spec(
        sample_rate=codec_config.sample_rate,
        segment_seconds=train_config.segment_seconds,
        corpus_minutes=train_config.corpus_minutes,
        val_fraction=train_config.val_fraction,
        seed=train_config.seed,
    )


def load_dataset(data_dir: str | os.PathLike | None, config: DataSpec | Any = None, split: str = "train") -> ClipList:
    """Usable clips of one split, as a :class:`ClipList` of float32 arrays at
    ``config.sample_rate`` (wrap it in :class:`~telucodec.data.crops.CropDataset` for a ``DataLoader``).

    ``data_dir=None`` uses the embedded Telugu corpus (``config.corpus_minutes`` minutes,
    built and cached on first use); otherwise every audio file under ``data_dir``. Bad files
    are skipped with one warning each. ``split`` is "train", "val" or "all"; the split is by
    file (:func:`split_by_file` with ``config.val_fraction`` and seed
    ``config.split_seed``, default 0, independent of the training seed). If only one file is
    usable the validation split reuses it (with a warning). Raises ``DataError`` when no
    file is usable.
    """
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    sample_rate = int(_cfg(config, "sample_rate"))
    min_seconds = float(_cfg(config, "min_seconds"))
    if data_dir is None:
        from telucodec.data.corpus import build_corpus

        minutes = float(_cfg(config, "corpus_minutes"))
        paths = build_corpus(minutes, sample_rate=sample_rate, seed=int(_cfg(config, "corpus_seed")))
        root = paths[0].parent
        source = f"embedded Telugu corpus ({minutes:g} min, {root})"
    else:
        root = Path(data_dir).expanduser()
        paths = scan_audio_folder(root)
        source = str(root)
        if not paths:
            raise DataError(f"no usable audio in {root}: no .wav/.flac/.ogg/.mp3 files found")

    key = (str(Path(root).resolve()), sample_rate, min_seconds, _file_signature(paths))
    if key in _cache:
        loaded = _cache[key]
    else:
        loaded = load_clips(paths, sample_rate, min_seconds)
        _cache.clear()  # keep only the latest folder in memory
        _cache[key] = loaded
    if not loaded:
        raise DataError(f"no usable audio in {root}: {len(paths)} files found, all skipped")

    if split == "all":
        return ClipList(loaded, sample_rate, source)
    by_path = dict(loaded)
    train, val = split_by_file(
        [p for p, _ in loaded], float(_cfg(config, "val_fraction")), int(_cfg(config, "split_seed")), root=root
    )
    chosen = train if split == "train" else val
    if not chosen:
        warnings.warn(
            f"only {len(loaded)} usable file(s) in {source}: the {split} split reuses the other split's audio",
            UserWarning,
            stacklevel=2,
        )
        chosen = val if split == "train" else train
    return ClipList([(p, by_path[p]) for p in chosen], sample_rate, f"{source}, {split} split")
