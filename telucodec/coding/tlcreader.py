"""Read a ``.tlc`` file in blocks of frames (:class:`TlcReader`), and decode what arrived of one that ends early,
with a :class:`TruncatedStreamWarning`: the *Streaming* rules of the format in :mod:`telucodec.coding.bitstream`."""

from __future__ import annotations

import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from telucodec.coding.bitstream import (
    _CRC,
    HEADER_BYTES,
    HEADER_BYTES_V2,
    VERSION,
    VERSION_ENTROPY,
    Bitstream,
    _check_fields,
    _check_header,
)
from telucodec.coding.payload import _check_entropy, _read_blocks, _reader, _unpack_bits_lenient
from telucodec.coding.tlcfile import _os_reason
from telucodec.errors import BitstreamError

__all__ = ["TruncatedStreamWarning", "TlcReader"]


class TruncatedStreamWarning(UserWarning):
    """A .tlc file ended early: the frames that arrived are decoded, unchecked by the CRC (message names the file)."""


class TlcReader:
    """Read a ``.tlc`` file in blocks of frames (see *Streaming* in :mod:`telucodec.coding.bitstream`).

    Opening checks the header (and, for a complete file, its size, CRC and padding, as
    :func:`telucodec.coding.tlcfile.read_tlc` does); :meth:`blocks` then gives ``(n_q, k)`` int64 code blocks. For a
    file that ends early, ``truncated`` is True, ``num_frames`` counts the whole frames that arrived, ``num_samples``
    is their length (or the declared length when every frame arrived), and a :class:`TruncatedStreamWarning` naming
    the file was issued.

    A version 2 (entropy-coded) file needs `entropy`, the model its header names; opening it decodes every block
    that arrived once, to check it (version 2's rules) and count its frames, keeping none of them."""

    def __init__(self, path, entropy=None):
        self.path = path = Path(path)
        source = str(path)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                head = f.read(HEADER_BYTES_V2)
                h = _check_header(head, source)
                unfinished = h.unfinished
                expected = h.overhead + h.plen
                if not unfinished and size > expected:
                    raise BitstreamError(f"{path}: {size - expected} trailing bytes after the end of the stream")
                if unfinished:
                    _check_fields(source, h._replace(num_samples=0, frames=0, plen=0))
                elif size < expected:
                    _check_fields(source, h)
                else:  # complete: everything read_tlc checks
                    f.seek(0)
                    crc = zlib.crc32(f.read(h.size))
                    remaining = h.plen
                    while remaining:
                        block = f.read(min(remaining, 1 << 20))
                        if not block:
                            raise BitstreamError(f"{path}: truncated while reading")
                        crc = zlib.crc32(block, crc)
                        remaining -= len(block)
                    (stored,) = _CRC.unpack(f.read(_CRC.size))
                    if crc != stored:
                        raise BitstreamError(f"{path}: CRC mismatch, the file is corrupted")
                    _check_fields(source, h)
                    pad = h.plen * 8 - h.n_q * h.frames * h.bits
                    if h.version == VERSION and pad:
                        f.seek(HEADER_BYTES + h.plen - 1)
                        if f.read(1)[0] & ((1 << pad) - 1):
                            raise BitstreamError(f"{path}: nonzero padding bits at the end of the payload")
                arrived = None
                if h.version == VERSION_ENTROPY:
                    _check_entropy(source, h, entropy)
                    complete = not unfinished and size >= expected
                    self._avail = h.plen if complete else max(0, size - h.size)
                    if not unfinished:
                        self._avail = min(self._avail, h.plen)
                    f.seek(h.size)
                    arrived = sum(
                        c.shape[1]
                        for c in _read_blocks(
                            _reader(f, source),
                            h,
                            None if unfinished else h.frames,
                            self._avail,
                            entropy,
                            source,
                            strict=complete,
                        )
                    )
        except FileNotFoundError:
            raise BitstreamError(f"no such file: {path}") from None
        except IsADirectoryError:
            raise BitstreamError(f"{path}: is a directory, not a .tlc file") from None
        except OSError as e:
            raise BitstreamError(f"cannot read {path}: {_os_reason(e)}") from None
        n_q, bits, hop, sr, frames, num_samples = h.n_q, h.bits, h.hop, h.sr, h.frames, h.num_samples
        self._head, self.entropy = h, entropy
        self.n_q, self.bits, self.envelope_stages = n_q, bits, h.flags
        self.codebook_size, self.sample_rate, self.hop_length = 1 << bits, sr, hop
        self.version, self.entropy_id = h.version, h.model_id.hex() if h.model_id else ""
        self.block_frames = h.block_frames or None
        self.declared_frames = None if unfinished else frames
        self.declared_samples = None if unfinished else num_samples
        complete = not unfinished and size >= expected
        self.truncated = not complete
        if complete:
            self.num_frames, self.num_samples = frames, num_samples
            return
        if arrived is None:  # version 1: the whole frames in the bytes there
            arrived = max(0, size - HEADER_BYTES) * 8 // (n_q * bits)
            if not unfinished:
                arrived = min(arrived, frames)
        if arrived == 0:
            what = "its writer never finished it" if unfinished else f"header declares {expected}"
            whole = "frame" if h.version == VERSION else "block"
            raise BitstreamError(f"{path}: truncated ({size} bytes, {what}): no whole {whole} arrived")
        self.num_frames = arrived
        self.num_samples = num_samples if not unfinished and arrived == frames else arrived * hop
        if unfinished:
            why = "its writer never finished it"
            of = ""
        else:
            why = f"header declares {expected} bytes"
            of = f" of {frames}"
        warnings.warn(
            f"{path}: truncated ({size} bytes, {why}): decoding the {arrived}{of} frames that arrived "
            f"({self.num_samples / sr:.2f} s), unchecked by the CRC",
            TruncatedStreamWarning,
            stacklevel=2,
        )

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def blocks(self, frames: int = 4096):
        """Yield the codes as ``(n_q, k)`` int64 arrays of at most `frames` frames each (version 1: a multiple of
        the frames that fill a whole number of bytes; version 2: decoded a block at a time)."""
        if self.version == VERSION_ENTROPY:
            yield from self._entropy_blocks(max(1, int(frames)))
            return
        group = 8 // int(np.gcd(8, self.n_q * self.bits))
        per = max(group, int(frames) // group * group)
        bits_per_frame = self.n_q * self.bits
        try:
            with open(self.path, "rb") as f:
                f.seek(HEADER_BYTES)
                done = 0
                while done < self.num_frames:
                    k = min(per, self.num_frames - done)
                    nbytes = (k * bits_per_frame + 7) // 8
                    data = f.read(nbytes)
                    if len(data) < nbytes:
                        raise BitstreamError(f"{self.path}: changed while it was being read")
                    flat = _unpack_bits_lenient(data, k * self.n_q, self.bits)
                    yield np.ascontiguousarray(flat.reshape(k, self.n_q).T)
                    done += k
        except OSError as e:
            raise BitstreamError(f"cannot read {self.path}: {_os_reason(e)}") from None

    def _entropy_blocks(self, per: int):
        """Version 2: decode the blocks counted at opening, regrouped into pieces of `per` frames."""
        source = str(self.path)
        pending, have, done = [], 0, 0
        try:
            with open(self.path, "rb") as f:
                f.seek(self._head.size)
                for codes in _read_blocks(
                    _reader(f, source),
                    self._head,
                    self.num_frames,
                    self._avail,
                    self.entropy,
                    source,
                    strict=not self.truncated,
                ):
                    pending.append(codes)
                    have += codes.shape[1]
                    while have >= per:
                        joined = np.concatenate(pending, axis=1)
                        yield np.ascontiguousarray(joined[:, :per])
                        pending, have, done = [joined[:, per:]], have - per, done + per
                if have:
                    yield np.ascontiguousarray(np.concatenate(pending, axis=1))
                    done += have
        except OSError as e:
            raise BitstreamError(f"cannot read {self.path}: {_os_reason(e)}") from None
        if done != self.num_frames:
            raise BitstreamError(f"{self.path}: changed while it was being read")

    def read_all(self) -> Bitstream:
        """Every frame at once, as a :class:`Bitstream`."""
        parts = list(self.blocks())
        codes = np.concatenate(parts, axis=1) if parts else np.zeros((self.n_q, 0), np.int64)
        return Bitstream(
            codes=codes,
            sample_rate=self.sample_rate,
            codebook_size=self.codebook_size,
            hop_length=self.hop_length,
            num_samples=self.num_samples,
            envelope_stages=self.envelope_stages,
            version=self.version,
            entropy_id=self.entropy_id,
        )
