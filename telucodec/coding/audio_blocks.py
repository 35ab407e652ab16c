"""Audio files block by block, so memory does not grow with their length: :class:`AudioBlockReader` (mono float32
blocks at a chosen rate) and :class:`AudioBlockWriter` (atomic WAV/FLAC/OGG), with the rules of
:mod:`telucodec.data.audio_io`. The CLI's ``encode`` and ``decode`` stream through them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np

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

__all__ = ["BLOCK_SECONDS", "AudioBlockReader", "AudioBlockWriter"]

#: Seconds of audio per block read from a file (AudioBlockReader).
BLOCK_SECONDS = 10.0


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
