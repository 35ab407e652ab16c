"""Whole ``.tlc`` files at once: codes to bytes and back (:func:`pack`, :func:`unpack`) and to files and back
(:func:`write_tlc`, atomic; :func:`read_tlc`, checked). The format: :mod:`telucodec.coding.bitstream`."""

from __future__ import annotations

import io
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
    HEADER_BYTES,
    HEADER_BYTES_V2,
    MAGIC,
    MAX_BLOCK_FRAMES,
    MAX_N_Q,
    MAX_SAMPLE_RATE,
    VERSION,
    VERSION_ENTROPY,
    Bitstream,
    _check_fields,
    _check_header,
    _field,
    _frames_match,
    bits_per_code,
)
from telucodec.coding.payload import (
    _block_bytes,
    _check_entropy,
    _check_entropy_for,
    _pack_bits,
    _read_blocks,
    _reader,
    _unpack_bits,
)
from telucodec.errors import BitstreamError

__all__ = ["pack", "unpack", "write_tlc", "read_tlc"]


def pack(
    codes,
    *,
    sample_rate: int,
    codebook_size: int,
    hop_length: int,
    num_samples: int,
    envelope_stages: int = 0,
    entropy=None,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> bytes:
    """Serialise codes of shape ``(n_q, frames)`` into ``.tlc`` bytes (the last ``envelope_stages`` of the
    ``n_q`` codes per frame being envelope codes): version 1, or version 2 (entropy-coded in blocks of
    `block_frames` frames) when an `entropy` model (:class:`telucodec.coding.entropy.EntropyModel`) is given.

    ``codes`` may be a numpy array or a CPU torch tensor of integers in ``[0, codebook_size)``.
    Raises :class:`BitstreamError` when the codes or fields cannot be represented.
    """
    if hasattr(codes, "detach"):  # torch tensor
        codes = codes.detach().cpu().numpy()
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise BitstreamError(f"codes must have shape (n_q, frames), got shape {codes.shape}")
    if not (np.issubdtype(codes.dtype, np.integer) or codes.dtype == np.bool_):
        raise BitstreamError(f"codes must be integers, got dtype {codes.dtype}")
    n_q, frames = codes.shape
    bits = bits_per_code(codebook_size)
    if not 1 <= n_q <= MAX_N_Q:
        raise BitstreamError(f"n_q must be between 1 and {MAX_N_Q}, got {n_q}")
    sample_rate = _field("sample_rate", sample_rate, 1, MAX_SAMPLE_RATE)
    envelope_stages = _field("envelope_stages", envelope_stages, 0, min(15, n_q - 1))
    hop_length = _field("hop_length", hop_length, 1, _U16)
    num_samples = _field("num_samples", num_samples, 0, _U32)
    if frames > _U32:
        raise BitstreamError(f"too many frames for the .tlc format: {frames}")
    if not _frames_match(frames, num_samples, hop_length):
        raise BitstreamError(
            f"{frames} frames of hop {hop_length} do not match {num_samples} samples "
            f"(need |frames*hop - samples| < hop)"
        )
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= (1 << bits)):
        raise BitstreamError(f"codes must lie in [0, {1 << bits}), got range [{codes.min()}, {codes.max()}]")
    if entropy is None:
        payload = _pack_bits(np.ascontiguousarray(codes.T).reshape(-1), bits)
        extension, version = b"", VERSION
    else:
        _check_entropy_for(entropy, n_q, bits, "pack")
        block_frames = _field("block_frames", block_frames, 1, MAX_BLOCK_FRAMES)
        codes = codes.astype(np.int64, copy=False)
        payload = b"".join(
            _block_bytes(entropy, codes[:, i : i + block_frames]) for i in range(0, frames, block_frames)
        )
        extension, version = _EXT.pack(entropy.id, block_frames, 0), VERSION_ENTROPY
    if len(payload) > _U32:
        raise BitstreamError(f"payload too large for the .tlc format: {len(payload)} bytes")
    header = (
        _HEADER.pack(
            MAGIC, version, n_q, bits, envelope_stages, sample_rate, hop_length, 0, num_samples, frames, len(payload)
        )
        + extension
    )
    body = header + payload
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes, *, source: str = "bitstream", entropy=None) -> Bitstream:
    """Parse ``.tlc`` bytes.  ``source`` names the input in error messages; `entropy`: the codec's entropy model,
    needed for a version 2 file (the one its header names).

    Everything is validated; any problem raises :class:`BitstreamError` with a one-line message.
    What is allocated is bounded by a constant times ``len(data)``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"{source}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    h = _check_header(data, source)
    expected = h.overhead + h.plen
    if len(data) < expected:
        raise BitstreamError(f"{source}: truncated ({len(data)} bytes, header declares {expected})")
    if len(data) > expected:
        raise BitstreamError(f"{source}: {len(data) - expected} trailing bytes after the end of the stream")
    body_end = h.size + h.plen
    (crc,) = _CRC.unpack_from(data, body_end)
    if zlib.crc32(data[:body_end]) != crc:
        raise BitstreamError(f"{source}: CRC mismatch, the file is corrupted")
    # Fields are covered by the CRC, so failures below mean a buggy or hostile writer.
    _check_fields(source, h)
    n_q, frames = h.n_q, h.frames
    if h.version == VERSION:
        count = n_q * frames  # Python int, cannot overflow
        try:
            flat = _unpack_bits(data[HEADER_BYTES:body_end], count, h.bits)
        except ValueError:
            raise BitstreamError(f"{source}: nonzero padding bits at the end of the payload") from None
        codes = np.ascontiguousarray(flat.reshape(frames, n_q).T)
    else:
        _check_entropy(source, h, entropy)
        parts = list(
            _read_blocks(
                _reader(io.BytesIO(data[h.size : body_end]), source), h, frames, h.plen, entropy, source, strict=True
            )
        )
        codes = np.concatenate(parts, axis=1) if parts else np.zeros((n_q, 0), np.int64)
    return Bitstream(
        codes=codes,
        sample_rate=h.sr,
        codebook_size=1 << h.bits,
        hop_length=h.hop,
        num_samples=h.num_samples,
        envelope_stages=h.flags,
        version=h.version,
        entropy_id=h.model_id.hex() if h.model_id else "",
    )


# ------------------------------------------------------------------------------------- files
def write_tlc(
    path,
    codes,
    *,
    sample_rate: int,
    codebook_size: int,
    hop_length: int,
    num_samples: int,
    envelope_stages: int = 0,
    entropy=None,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> Path:
    """Write a ``.tlc`` file atomically (temporary file in the same folder, fsync, ``os.replace``); version 2 when
    an `entropy` model is given (see :func:`pack`).

    Either the complete new file is at ``path`` afterwards or, if anything fails, the previous
    content (if any) is untouched.  Returns the path.
    """
    path = Path(path)
    data = pack(
        codes,
        sample_rate=sample_rate,
        codebook_size=codebook_size,
        hop_length=hop_length,
        num_samples=num_samples,
        envelope_stages=envelope_stages,
        entropy=entropy,
        block_frames=block_frames,
    )
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quietly(tmp)
        raise BitstreamError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path


def read_tlc(path, entropy=None) -> Bitstream:
    """Read and validate a ``.tlc`` file.  Errors name the file. `entropy`: the codec's entropy model, needed for a
    version 2 file.

    The header is read and checked against the file size first, so a large non-``.tlc`` file or
    a header with absurd sizes is rejected without reading the whole file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(HEADER_BYTES_V2)
            h = _check_header(head, str(path))
            expected = h.overhead + h.plen
            if size < expected:
                raise BitstreamError(f"{path}: truncated ({size} bytes, header declares {expected})")
            if size > expected:
                raise BitstreamError(f"{path}: {size - expected} trailing bytes after the end of the stream")
            f.seek(0)
            data = f.read(expected)
    except FileNotFoundError:
        raise BitstreamError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise BitstreamError(f"{path}: is a directory, not a .tlc file") from None
    except OSError as e:
        raise BitstreamError(f"cannot read {path}: {e.strerror or e}") from None
    return unpack(data, source=str(path), entropy=entropy)


def _unlink_quietly(p: Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _os_reason(e: OSError) -> str:
    return e.strerror or str(e)
