"""Write a ``.tlc`` file frame by frame, as an encoder produces them (:class:`TlcWriter`): the *Streaming*
rules of the format in :mod:`telucodec.coding.bitstream`. The finished file is byte for byte what
:func:`telucodec.coding.tlcfile.pack` makes of the same codes."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from telucodec.coding.bitstream import (
    _CRC,
    _EXT,
    _HEADER,
    _U16,
    _U32,
    DEFAULT_BLOCK_FRAMES,
    MAGIC,
    MAX_BLOCK_FRAMES,
    MAX_N_Q,
    MAX_SAMPLE_RATE,
    UNFINISHED,
    VERSION,
    VERSION_ENTROPY,
    _field,
    _frames_match,
    bits_per_code,
)
from telucodec.coding.payload import _block_bytes, _check_entropy_for, _pack_bits
from telucodec.coding.tlcfile import _os_reason, _unlink_quietly
from telucodec.errors import BitstreamError

__all__ = ["TlcWriter"]


class TlcWriter:
    """Write a ``.tlc`` file frame by frame (see *Streaming* in :mod:`telucodec.coding.bitstream`), atomically:
    into a temporary file in the same folder, renamed over ``path`` by :meth:`finish`; :meth:`abort` (or leaving a
    ``with`` block without ``finish``) removes it. ``write(codes)`` takes ``(n_q, k)`` integer codes, any k. With an
    `entropy` model the file is version 2, written a block of `block_frames` frames at a time."""

    def __init__(
        self,
        path,
        *,
        n_q: int,
        sample_rate: int,
        codebook_size: int,
        hop_length: int,
        envelope_stages: int = 0,
        entropy=None,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
    ):
        self.path = Path(path)
        self.bits = bits_per_code(codebook_size)
        self.n_q = _field("n_q", n_q, 1, MAX_N_Q)
        self.sample_rate = _field("sample_rate", sample_rate, 1, MAX_SAMPLE_RATE)
        self.envelope_stages = _field("envelope_stages", envelope_stages, 0, min(15, self.n_q - 1))
        self.hop_length = _field("hop_length", hop_length, 1, _U16)
        self.codebook_size = 1 << self.bits
        self.entropy = entropy
        self.version = VERSION if entropy is None else VERSION_ENTROPY
        if entropy is not None:
            _check_entropy_for(entropy, self.n_q, self.bits, str(self.path))
            self.block_frames = _field("block_frames", block_frames, 1, MAX_BLOCK_FRAMES)
        self.num_frames = 0
        self._payload = 0
        self._crc_payload = 0
        if entropy is None:
            self._group = 8 // np.gcd(8, self.n_q * self.bits)  # frames per whole number of bytes
        else:
            self._group = self.block_frames  # whole blocks until finish()
        self._pending = np.zeros((self.n_q, 0), np.int64)
        self._done = False
        self._tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        try:
            self._f = open(self._tmp, "w+b")
            self._f.write(self._header(UNFINISHED, UNFINISHED, UNFINISHED))
        except OSError as e:
            self._close_quietly()
            raise BitstreamError(f"cannot write {self.path}: {_os_reason(e)}") from None

    def _header(self, num_samples: int, frames: int, payload: int) -> bytes:
        head = _HEADER.pack(
            MAGIC,
            self.version,
            self.n_q,
            self.bits,
            self.envelope_stages,
            self.sample_rate,
            self.hop_length,
            0,
            num_samples,
            frames,
            payload,
        )
        return head if self.entropy is None else head + _EXT.pack(self.entropy.id, self.block_frames, 0)

    def _emit(self, codes: np.ndarray) -> None:
        if self.entropy is None:
            data = _pack_bits(np.ascontiguousarray(codes.T).reshape(-1), self.bits)
        else:
            try:
                data = b"".join(
                    _block_bytes(self.entropy, codes[:, i : i + self.block_frames])
                    for i in range(0, codes.shape[1], self.block_frames)
                )
            except BitstreamError:
                self.abort()
                raise
        try:
            self._f.write(data)
        except OSError as e:
            self.abort()
            raise BitstreamError(f"cannot write {self.path}: {_os_reason(e)}") from None
        self._payload += len(data)

    def write(self, codes) -> None:
        """Append frames: ``codes`` of shape ``(n_q, k)``, integers in ``[0, codebook_size)``."""
        if self._done:
            raise BitstreamError(f"{self.path}: the stream is already finished")
        if hasattr(codes, "detach"):
            codes = codes.detach().cpu().numpy()
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] != self.n_q:
            self.abort()
            raise BitstreamError(f"codes must have shape ({self.n_q}, frames), got shape {codes.shape}")
        if not (np.issubdtype(codes.dtype, np.integer) or codes.dtype == np.bool_):
            self.abort()
            raise BitstreamError(f"codes must be integers, got dtype {codes.dtype}")
        if not codes.shape[1]:
            return
        if int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size:
            self.abort()
            raise BitstreamError(
                f"codes must lie in [0, {self.codebook_size}), got range [{codes.min()}, {codes.max()}]"
            )
        if self.num_frames + codes.shape[1] > _U32 - 1:
            self.abort()
            raise BitstreamError(f"too many frames for the .tlc format: {self.num_frames + codes.shape[1]}")
        self.num_frames += codes.shape[1]
        pending = np.concatenate([self._pending, codes.astype(np.int64)], axis=1)
        whole = pending.shape[1] // self._group * self._group
        if whole:
            self._emit(pending[:, :whole])
        self._pending = pending[:, whole:]

    def finish(self, num_samples: int) -> Path:
        """End the stream: the original audio's length in samples; writes the counts and the CRC, fsyncs and
        renames the file into place. Returns the path."""
        if self._done:
            raise BitstreamError(f"{self.path}: the stream is already finished")
        try:
            num_samples = _field("num_samples", num_samples, 0, _U32 - 1)
            if not _frames_match(self.num_frames, num_samples, self.hop_length):
                raise BitstreamError(
                    f"{self.num_frames} frames of hop {self.hop_length} do not match {num_samples} samples "
                    f"(need |frames*hop - samples| < hop)"
                )
            if self._pending.shape[1]:
                self._emit(self._pending)
                self._pending = self._pending[:, :0]
            if self._payload > _U32 - 1:
                raise BitstreamError(f"payload too large for the .tlc format: {self._payload} bytes")
            header = self._header(num_samples, self.num_frames, self._payload)
            f = self._f
            f.seek(0)
            f.write(header)
            f.flush()
            f.seek(0)
            crc = 0
            while True:  # the CRC covers the header, so read it all back
                block = f.read(1 << 20)
                if not block:
                    break
                crc = zlib.crc32(block, crc)
            f.seek(0, os.SEEK_END)
            f.write(_CRC.pack(crc))
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.abort()
            raise BitstreamError(f"cannot write {self.path}: {_os_reason(e)}") from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.path

    def _close_quietly(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None:
            try:
                f.close()
            except OSError:
                pass

    def abort(self) -> None:
        """Give up: remove the temporary file (the target path is untouched)."""
        if self._done:
            return
        self._done = True
        self._close_quietly()
        _unlink_quietly(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()  # a no-op after finish()
