"""The payload of a ``.tlc`` file: the codes bit-packed (version 1) or range-coded in blocks (version 2).

The byte layout is documented in :mod:`telucodec.coding.bitstream`; :mod:`telucodec.coding.tlcfile`,
:mod:`telucodec.coding.tlcwriter` and :mod:`telucodec.coding.tlcreader` use these helpers to write and read it."""

from __future__ import annotations

import numpy as np

from telucodec.coding.bitstream import _BLOCK, _U16, _Head
from telucodec.errors import BitstreamError


# ------------------------------------------------------------------------------- version 1: bit packing
def _pack_bits(flat: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers < 2**bits, ``bits`` bits each, MSB first."""
    if flat.size == 0:
        return b""
    if bits == 8:
        return flat.astype(np.uint8).tobytes()
    if bits == 16:
        return flat.astype(">u2").tobytes()
    # Each code as 16 big-endian bits; keep the low ``bits`` columns and pack them back to back.
    bitmat = np.unpackbits(flat.astype(">u2").view(np.uint8)).reshape(-1, 16)[:, 16 - bits :]
    return np.packbits(bitmat.reshape(-1)).tobytes()


def _unpack_bits(payload: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`_pack_bits`; returns ``count`` values as int64. Padding must be zero."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if bits == 8:
        return raw.astype(np.int64)
    if bits == 16:
        return raw.view(">u2").astype(np.int64)
    allbits = np.unpackbits(raw)
    if allbits[count * bits :].any():
        raise ValueError("nonzero padding bits")
    bitmat = allbits[: count * bits].reshape(count, bits)
    out = np.zeros(count, dtype=np.int64)
    for i in range(bits):
        out <<= 1
        out |= bitmat[:, i]
    return out


def _unpack_bits_lenient(payload: bytes, count: int, bits: int) -> np.ndarray:
    """:func:`_unpack_bits` without the padding check (a block may end inside a byte shared with the next)."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    if bits == 8:
        return raw[:count].astype(np.int64)
    if bits == 16:
        return raw[: 2 * count].view(">u2").astype(np.int64)
    bitmat = np.unpackbits(raw)[: count * bits].reshape(count, bits)
    out = np.zeros(count, dtype=np.int64)
    for i in range(bits):
        out <<= 1
        out |= bitmat[:, i]
    return out


# ------------------------------------------------------------------------- version 2: entropy-coded blocks
def _check_entropy_for(entropy, n_q: int, bits: int, where: str) -> None:
    """The writer's check: `entropy` can code n_q codes of 2**bits."""
    if entropy.codebook_size != 1 << bits or not entropy.covers(n_q):
        raise BitstreamError(
            f"{where}: the entropy model {entropy.hex_id} codes {entropy.codebook_size}-code "
            f"codebooks at n_q in {list(entropy.n_qs)}, not {n_q} codes of {1 << bits}"
        )


def _block_bytes(entropy, codes: np.ndarray) -> bytes:
    """One version 2 block: the u16 word count and the words of ``entropy.encode(codes)``."""
    try:
        words = entropy.encode(codes)
    except ValueError as e:
        raise BitstreamError(f"cannot entropy-code these codes: {e}") from None
    if len(words) > _U16:
        raise BitstreamError(f"a block of {codes.shape[1]} frames needs {len(words)} words, more than a block holds")
    return _BLOCK.pack(len(words)) + words.astype("<u4").tobytes()


def _check_entropy(source: str, h: _Head, entropy) -> None:
    """A version 2 file can only be read with the entropy model its header names."""
    theirs = h.model_id.hex()
    if entropy is None:
        raise BitstreamError(
            f"{source}: entropy-coded with entropy model {theirs}, but the decoding codec has "
            f"none: decode it with the codec that encoded it"
        )
    if entropy.id != h.model_id:
        raise BitstreamError(
            f"{source}: entropy-coded with entropy model {theirs}, but the decoding codec's is "
            f"{entropy.hex_id}: decode it with the codec that encoded it"
        )
    if entropy.codebook_size != 1 << h.bits or not entropy.covers(h.n_q):
        raise BitstreamError(f"{source}: entropy model {theirs} does not code {h.n_q} codes of {1 << h.bits}")


def _read_blocks(read, h: _Head, frames: int | None, avail: int, entropy, source: str, strict: bool):
    """Yield the ``(n_q, k)`` codes of a version 2 payload, block by block. ``read(n)`` gives the next n payload
    bytes; `avail` of them are there; `frames` is the total (None: not known, a stream whose writer never
    finished, so every block that arrived is a whole one of ``block_frames``). Strict: any problem is a
    BitstreamError and the blocks must fill `avail` exactly; otherwise the first block that is cut off or fails a
    check ends the stream (a file that ends early)."""
    n_q, per = h.n_q, h.block_frames
    done = used = index = 0
    while frames is None or done < frames:
        k = per if frames is None else min(per, frames - done)
        problem = None
        if used + _BLOCK.size > avail:
            problem = f"the payload ends inside block {index}"
        else:
            (w,) = _BLOCK.unpack(read(_BLOCK.size))
            if used + _BLOCK.size + 4 * w > avail:
                problem = f"the payload ends inside block {index}"
            elif n_q * k > 32 * w + 32:
                problem = f"block {index} claims {n_q * k} codes in {4 * w} bytes, less than a bit per code"
            else:
                words = np.frombuffer(read(4 * w), dtype="<u4").astype(np.uint32)
                try:
                    codes = entropy.decode(words, n_q, k)
                    valid = np.array_equal(entropy.encode(codes), words)
                except ValueError:
                    valid = False
                if not valid:
                    problem = f"block {index} is not valid entropy-coded data"
        if problem is not None:
            if strict:
                raise BitstreamError(f"{source}: {problem}")
            return
        used += _BLOCK.size + 4 * w
        done += k
        index += 1
        yield codes
    if strict and used != avail:
        raise BitstreamError(f"{source}: {avail - used} bytes after the last block of the payload")


def _reader(f, source: str):
    """``read(n)`` on file `f` that insists on n bytes."""

    def read(n: int) -> bytes:
        data = f.read(n)
        if len(data) < n:
            raise BitstreamError(f"{source}: changed while it was being read")
        return data

    return read
