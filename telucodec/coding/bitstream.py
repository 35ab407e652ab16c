"""The ``.tlc`` bitstream: how TeluCodec stores codes on disk.

A ``.tlc`` file holds the discrete codes of one clip plus everything needed to turn them back
into audio of the right length.  The format is small, fixed and fully checked: any truncation,
appended garbage or bit flip is reported as :class:`telucodec.errors.BitstreamError`.

This module defines the format: its constants, the header's fields and rules, the sizes. The code that
writes and reads it: :mod:`telucodec.coding.tlcfile` (whole files: :func:`pack`, :func:`unpack`,
:func:`write_tlc`, :func:`read_tlc`), :mod:`telucodec.coding.tlcwriter` (:class:`TlcWriter`),
:mod:`telucodec.coding.tlcreader` (:class:`TlcReader`, :class:`TruncatedStreamWarning`) and
:mod:`telucodec.coding.payload` (the payload's bit packing and entropy-coded blocks).

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

import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from telucodec.errors import BitstreamError

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_BYTES",
    "OVERHEAD_BYTES",
    "MAX_N_Q",
    "MAX_BITS",
    "Bitstream",
    "bits_per_code",
    "bits_per_second",
    "payload_bytes",
    "file_size",
    "UNFINISHED",
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


# ------------------------------------------------------------------------------------ header
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
