"""The ``.tlc`` bitstream: how TeluCodec stores codes on disk.

A ``.tlc`` file holds the discrete codes of one clip plus everything needed to turn them back
into audio of the right length.  The format is small, fixed and fully checked: any truncation,
appended garbage or bit flip is reported as :class:`telucodec.errors.BitstreamError`.

Byte layout (version 1)
-----------------------
All integers are unsigned and **little-endian**.  Offsets are in bytes.

======  ====  ==========  ==============================================================
Offset  Size  Type        Field
======  ====  ==========  ==============================================================
0       4     bytes       magic ``b"TLC1"``
4       1     u8          format version, currently ``1``
5       1     u8          ``n_q``: number of quantizer levels used, 1..32
6       1     u8          ``bits``: bits per code, 1..16; codebook size = ``2 ** bits``
7       1     u8          flags: low 4 bits = envelope stages (see below), high 4 bits 0
8       4     u32         sample rate in Hz, 1..1_000_000
12      2     u16         hop length: audio samples per frame, >= 1
14      2     u16         reserved, must be 0
16      4     u32         ``num_samples``: length of the original audio in samples
20      4     u32         ``num_frames``: number of code frames
24      4     u32         ``payload_length``: payload size in bytes
28      P     bytes       payload (``P = payload_length``), bit-packed codes, see below
28+P    4     u32         CRC-32 (zlib / IEEE 802.3) of bytes ``0 .. 28+P-1``
======  ====  ==========  ==============================================================

The header is :data:`HEADER_BYTES` = 28 bytes and the CRC trailer 4 bytes, so every file
carries :data:`OVERHEAD_BYTES` = 32 bytes on top of the payload.  The codebook size is stored
as its base-2 logarithm, so the full range 2 .. 65536 fits one byte.

Payload
-------
Codes are written **frame-major**: all ``n_q`` codes of frame 0 (quantizer 0 first), then all
codes of frame 1, and so on, so a reader can stream frame by frame.  Each code takes exactly
``bits`` bits, most significant bit first, packed back to back with no alignment; the last
byte is padded with zero bits.  Hence::

    payload_length == ceil(n_q * num_frames * bits / 8)

Consistency rules checked when reading
--------------------------------------
* the file is exactly ``32 + payload_length`` bytes long (shorter: truncated; longer: trailing
  bytes) — checked before anything is allocated, so a tiny file that claims billions of frames
  fails at once;
* the CRC matches (CRC-32 detects every single-bit and every burst error up to 32 bits);
* ``n_q`` in 1..32, ``bits`` in 1..16, reserved fields zero, padding bits zero;
* the envelope stage count is below ``n_q``;
* frames and samples agree: ``|num_frames * hop_length - num_samples| < hop_length``.  The
  decoder produces ``num_frames * hop_length`` samples and the result is trimmed (or, when the
  encoder dropped a partial last frame, zero-padded) to ``num_samples``.

Envelope stages
---------------
A codec with envelope codebooks (:mod:`telucodec.codec.envelope`) spends the last ``k`` of its ``n_q``
codes per frame on the spectral envelope.  ``k`` (0..15) is stored in the flags byte, so that a
decoder whose codec would read those codes differently (a codec without envelope codebooks, or
with another split) refuses the file instead of decoding noise.  Files with ``k = 0`` are the
same bytes as before envelope codebooks existed.

Streaming
---------
:class:`TlcWriter` writes a file frame by frame, as an encoder produces them: it writes the header with
``num_samples``, ``num_frames`` and ``payload_length`` all ``0xFFFFFFFF`` (:data:`UNFINISHED`: not known yet),
appends the packed frames, and when the stream ends seeks back, writes the real counts and appends the CRC. The
finished file is byte for byte what :func:`pack` makes of the same codes (same format, version 1).

:class:`TlcReader` reads a file block of frames by block of frames. A complete file is checked exactly as
:func:`read_tlc` checks it (size, CRC, every field) before any frame is given out. A file that ends early (a
stream cut off: a transfer or a writer that stopped, whose header may still say ``UNFINISHED``) is not an error
there: it gives the whole frames that arrived, with a :class:`TruncatedStreamWarning` naming the file, since no
CRC can vouch for them. One with no whole frame, or a damaged header, is still a :class:`BitstreamError`.
:func:`read_tlc` and :func:`unpack` stay strict.

Bitrate
-------
The payload costs ``n_q * bits * sample_rate / hop_length`` bits per second
(:func:`bits_per_second`); the 32-byte overhead adds ``256 / duration`` bits per second, e.g.
25.6 bit/s for a 10-second clip (:func:`file_size` gives the exact file size). These are version 1
figures; a version 2 file is smaller, by how much depends on the codes (results/entropy/README.md).

Byte layout (version 2: entropy-coded)
--------------------------------------
The same codes, range-coded with a static model of their statistics that ships with the codec
(:mod:`telucodec.coding.entropy`), in independently decodable blocks. The header is version 1's first 28
bytes (version byte ``2``; ``payload_length`` counts the blocks' bytes) plus 12 bytes:

======  ====  ==========  ==============================================================
Offset  Size  Type        Field
======  ====  ==========  ==============================================================
0       28    ..          as version 1, with version ``2``
28      8     bytes       entropy model id (:attr:`telucodec.coding.entropy.EntropyModel.id`)
36      2     u16         ``block_frames``: frames per block, 1..2048
38      2     u16         reserved, must be 0
40      P     bytes       payload: ``ceil(num_frames / block_frames)`` blocks, see below
40+P    4     u32         CRC-32 of bytes ``0 .. 40+P-1``
======  ====  ==========  ==============================================================

:data:`HEADER_BYTES_V2` = 40, :data:`OVERHEAD_BYTES_V2` = 44. Block ``i`` holds frames
``i * block_frames`` onwards: ``block_frames`` of them, the last block the rest. A block is a u16
word count ``w`` followed by ``w`` u32 words: what :meth:`telucodec.coding.entropy.EntropyModel.encode`
makes of the block's ``(n_q, k)`` codes (a constriction range coder, stage by stage, each code with a
prior conditioned on the previous stage's code in the same frame). Every block starts a fresh coder,
so a block decodes without the ones before it.

Reading a version 2 file needs the entropy model its header names: a decoder with no entropy model or
another one refuses the file with a one-line error. Besides version 1's rules (size, CRC, reserved
fields, ``n_q``, ``bits``, envelope stages, frames against samples), a reader checks that the blocks
fill the payload exactly, that no block holds more codes than ``32 * w + 32`` (the model gives every
code less than probability 1/2, so each costs more than a bit: a header cannot make a small file
decode billions of codes; from the header alone, ``n_q * num_frames <= 8 * payload_length + 16 *
blocks``), that the words decode, and that the codes they decode to encode back to exactly those
words (accepted streams are canonical). A file written with an entropy model is version 2 unless the
writer is told otherwise (``entropy=None``, ``--no_entropy``); files without one stay version 1.

Streaming (version 2): :class:`TlcWriter` keeps at most ``block_frames`` frames and writes each block
when it is full (the last one at :meth:`TlcWriter.finish`). :class:`TlcReader` decodes a block at a
time; from a file that ends early it gives the whole blocks that arrived (a block that is cut off or
does not decode ends it), with the same :class:`TruncatedStreamWarning`.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from telucodec.errors import BitstreamError


class TruncatedStreamWarning(UserWarning):
    """A .tlc file ended early: the frames that arrived are decoded, unchecked by the CRC (message names the file)."""


__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_BYTES",
    "OVERHEAD_BYTES",
    "MAX_N_Q",
    "MAX_BITS",
    "Bitstream",
    "pack",
    "unpack",
    "write_tlc",
    "read_tlc",
    "bits_per_code",
    "bits_per_second",
    "payload_bytes",
    "file_size",
    "UNFINISHED",
    "TruncatedStreamWarning",
    "TlcWriter",
    "TlcReader",
    "VERSION_ENTROPY",
    "HEADER_BYTES_V2",
    "OVERHEAD_BYTES_V2",
    "DEFAULT_BLOCK_FRAMES",
    "MAX_BLOCK_FRAMES",
]

MAGIC = b"TLC1"
VERSION = 1
_HEADER = struct.Struct(
    "<4sBBBBIHHIII"
)  # magic, version, n_q, bits, flags, sr, hop, reserved, samples, frames, payload
HEADER_BYTES = _HEADER.size  # 28
_CRC = struct.Struct("<I")
OVERHEAD_BYTES = HEADER_BYTES + _CRC.size  # 32
MAX_N_Q = 32
MAX_BITS = 16  # codebook size up to 65536
MAX_SAMPLE_RATE = 1_000_000
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
UNFINISHED = _U32  # num_samples, num_frames and payload_length while a TlcWriter's stream is still open

VERSION_ENTROPY = 2
_EXT = struct.Struct("<8sHH")  # version 2: entropy model id, block_frames, reserved
HEADER_BYTES_V2 = HEADER_BYTES + _EXT.size  # 40
OVERHEAD_BYTES_V2 = HEADER_BYTES_V2 + _CRC.size  # 44
_BLOCK = struct.Struct("<H")  # a block's word count
DEFAULT_BLOCK_FRAMES = 100  # 2 s at 50 frames/s: about 20 bit/s of block overhead (results/entropy/README.md)
MAX_BLOCK_FRAMES = 2048  # 32 stages x 2048 frames x at most 16 bits fit a u16 count of words

assert HEADER_BYTES == 28 and HEADER_BYTES_V2 == 40


class _Head(NamedTuple):
    """A header's fields (version 2's last three are None/0 in version 1)."""

    magic: bytes
    version: int
    n_q: int
    bits: int
    flags: int
    sr: int
    hop: int
    reserved: int
    num_samples: int
    frames: int
    plen: int
    model_id: bytes | None = None
    block_frames: int = 0
    reserved2: int = 0

    @property
    def size(self) -> int:
        return HEADER_BYTES_V2 if self.version == VERSION_ENTROPY else HEADER_BYTES

    @property
    def overhead(self) -> int:
        return self.size + _CRC.size

    @property
    def unfinished(self) -> bool:
        return (self.num_samples, self.frames, self.plen) == (UNFINISHED, UNFINISHED, UNFINISHED)


@dataclass(frozen=True)
class Bitstream:
    """The decoded contents of a ``.tlc`` file."""

    codes: np.ndarray  # int64, shape (n_q, frames)
    sample_rate: int
    codebook_size: int
    hop_length: int
    num_samples: int
    envelope_stages: int = 0  # the last k of the n_q codes per frame are envelope codes (telucodec.codec.envelope)
    version: int = VERSION  # 2: the file was entropy-coded
    entropy_id: str = ""  # version 2: the entropy model's id, hex

    @property
    def n_q(self) -> int:
        return int(self.codes.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[1])

    @property
    def duration(self) -> float:
        """Length of the original audio in seconds."""
        return self.num_samples / self.sample_rate

    @property
    def bits_per_second(self) -> float:
        """Payload bitrate (codes only, no header), in bit/s."""
        return bits_per_second(self.n_q, self.codebook_size, self.sample_rate, self.hop_length)

    @property
    def file_size(self) -> int:
        """Size in bytes of this stream as a version 1 ``.tlc`` file, header and CRC included (an entropy-coded
        file is smaller: see its length)."""
        return file_size(self.n_q, self.num_frames, self.codebook_size)


# ----------------------------------------------------------------------------------- helpers
def bits_per_code(codebook_size: int) -> int:
    """``log2(codebook_size)``; the codebook size must be a power of two in 2..65536."""
    try:
        cs = int(codebook_size)
        ok = cs == codebook_size and 2 <= cs <= (1 << MAX_BITS) and not cs & (cs - 1)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise BitstreamError(f"codebook size must be a power of two between 2 and 65536, got {codebook_size!r}")
    return cs.bit_length() - 1


def bits_per_second(n_q: int, codebook_size: int, sample_rate: int, hop_length: int) -> float:
    """Payload bitrate in bit/s: ``n_q * log2(codebook_size) * sample_rate / hop_length``.

    The fixed per-file overhead (:data:`OVERHEAD_BYTES` = 32 bytes) is not included; over a clip
    of ``d`` seconds it adds ``8 * 32 / d`` bit/s.
    """
    return n_q * bits_per_code(codebook_size) * sample_rate / hop_length


def payload_bytes(n_q: int, num_frames: int, codebook_size: int) -> int:
    """Payload size in bytes for ``n_q`` x ``num_frames`` codes."""
    return (n_q * num_frames * bits_per_code(codebook_size) + 7) // 8


def file_size(n_q: int, num_frames: int, codebook_size: int) -> int:
    """Exact ``.tlc`` file size in bytes: payload plus the 32-byte header and CRC."""
    return OVERHEAD_BYTES + payload_bytes(n_q, num_frames, codebook_size)


def _field(name: str, value, lo: int, hi: int) -> int:
    """``value`` as an int in ``[lo, hi]``, else BitstreamError."""
    try:
        as_int = int(value)
        ok = as_int == value and lo <= as_int <= hi and not isinstance(value, bool)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise BitstreamError(f"{name}={value!r} is not an integer in {lo}..{hi}, as the .tlc format needs")
    return as_int


def _frames_match(num_frames: int, num_samples: int, hop_length: int) -> bool:
    return abs(num_frames * hop_length - num_samples) < hop_length


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


# -------------------------------------------------------------------------------- pack/unpack
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


def _check_header(data: bytes, source: str) -> _Head:
    """Validate magic and version; return the unpacked header fields (`data` may run on past the header)."""
    if len(data) < HEADER_BYTES:
        if len(data) >= 4 and data[:4] != MAGIC:
            raise BitstreamError(f"{source}: not a TeluCodec bitstream (bad magic {bytes(data[:4])!r})")
        raise BitstreamError(f"{source}: truncated ({len(data)} bytes, header needs {HEADER_BYTES})")
    fields = _HEADER.unpack_from(data, 0)
    if fields[0] != MAGIC:
        raise BitstreamError(f"{source}: not a TeluCodec bitstream (bad magic {fields[0]!r})")
    if fields[1] not in (VERSION, VERSION_ENTROPY):
        raise BitstreamError(
            f"{source}: unsupported .tlc version {fields[1]} (this reader handles {VERSION} and {VERSION_ENTROPY})"
        )
    if fields[1] == VERSION:
        return _Head(*fields)
    if len(data) < HEADER_BYTES_V2:
        raise BitstreamError(f"{source}: truncated ({len(data)} bytes, a version 2 header needs {HEADER_BYTES_V2})")
    return _Head(*fields, *_EXT.unpack_from(data, HEADER_BYTES))


def _check_fields(source: str, h: _Head) -> None:
    """The header's consistency rules (module docstring); BitstreamError naming `source` on the first broken."""
    n_q, bits, flags, sr, hop, frames, num_samples, plen = (
        h.n_q,
        h.bits,
        h.flags,
        h.sr,
        h.hop,
        h.frames,
        h.num_samples,
        h.plen,
    )
    if flags & 0xF0 or h.reserved != 0 or h.reserved2 != 0:
        raise BitstreamError(f"{source}: reserved header fields are not zero")
    if not 1 <= n_q <= MAX_N_Q:
        raise BitstreamError(f"{source}: n_q={n_q} out of range 1..{MAX_N_Q}")
    if flags >= n_q:
        raise BitstreamError(f"{source}: {flags} envelope stages of {n_q} codes per frame")
    if not 1 <= bits <= MAX_BITS:
        raise BitstreamError(f"{source}: {bits} bits per code out of range 1..{MAX_BITS}")
    if not 1 <= sr <= MAX_SAMPLE_RATE:
        raise BitstreamError(f"{source}: sample rate {sr} out of range")
    if hop < 1:
        raise BitstreamError(f"{source}: hop length is 0")
    if not _frames_match(frames, num_samples, hop):
        raise BitstreamError(f"{source}: {frames} frames of hop {hop} do not match {num_samples} samples")
    count = n_q * frames  # Python int, cannot overflow
    if h.version == VERSION:
        if (count * bits + 7) // 8 != plen:
            raise BitstreamError(
                f"{source}: payload is {plen} bytes but {n_q} x {frames} codes of {bits} bits need {(count * bits + 7) // 8}"
            )
        return
    if not 1 <= h.block_frames <= MAX_BLOCK_FRAMES:
        raise BitstreamError(f"{source}: blocks of {h.block_frames} frames out of range 1..{MAX_BLOCK_FRAMES}")
    blocks = -(-frames // h.block_frames)
    if plen < _BLOCK.size * blocks or count > 8 * plen + 16 * blocks or (not frames and plen):
        raise BitstreamError(
            f"{source}: payload of {plen} bytes cannot hold {n_q} x {frames} entropy-coded codes in {blocks} blocks"
        )


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


# ---------------------------------------------------------------------------------- streaming
def _os_reason(e: OSError) -> str:
    return e.strerror or str(e)


class TlcWriter:
    """Write a ``.tlc`` file frame by frame (see *Streaming* above), atomically: into a temporary file in the same
    folder, renamed over ``path`` by :meth:`finish`; :meth:`abort` (or leaving a ``with`` block without
    ``finish``) removes it. ``write(codes)`` takes ``(n_q, k)`` integer codes, any k. With an `entropy` model the
    file is version 2, written a block of `block_frames` frames at a time."""

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


class TlcReader:
    """Read a ``.tlc`` file in blocks of frames (see *Streaming* above).

    Opening checks the header (and, for a complete file, its size, CRC and padding, as :func:`read_tlc` does);
    :meth:`blocks` then gives ``(n_q, k)`` int64 code blocks. For a file that ends early, ``truncated`` is True,
    ``num_frames`` counts the whole frames that arrived, ``num_samples`` is their length (or the declared length
    when every frame arrived), and a :class:`TruncatedStreamWarning` naming the file was issued.

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
