"""The .tlc bitstream: exact layout, round trips, and rejection of every kind of damage."""

import os
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telucodec.coding import bitstream as bs
from telucodec.coding.bitstream import Bitstream, BitstreamError
from telucodec.coding.tlcfile import pack, read_tlc, unpack, write_tlc

SR, HOP = 16000, 320


def make(n_q=4, frames=10, K=1024, seed=0, num_samples=None):
    codes = np.random.default_rng(seed).integers(0, K, size=(n_q, frames))
    ns = frames * HOP - 7 if num_samples is None else num_samples
    return codes, pack(codes, sample_rate=SR, codebook_size=K, hop_length=HOP, num_samples=ns)


def recrc(data: bytes) -> bytes:
    """Fix the CRC trailer so a deliberately inconsistent header reaches the field checks."""
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def set_field(data: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into("<" + fmt, b, offset, value)
    return bytes(b)


# ------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("K", [2, 4, 8, 256, 1024, 2048, 4096, 65536])
@pytest.mark.parametrize("n_q", [1, 2, 3, 8, 32])
def test_round_trip(K, n_q):
    codes, data = make(n_q=n_q, frames=13, K=K, seed=K + n_q)
    out = unpack(data)
    assert isinstance(out, Bitstream)
    assert out.codes.dtype == np.int64 and out.codes.shape == (n_q, 13)
    np.testing.assert_array_equal(out.codes, codes)
    assert (out.sample_rate, out.codebook_size, out.hop_length, out.num_samples, out.n_q) == (
        SR,
        K,
        HOP,
        13 * HOP - 7,
        n_q,
    )
    assert len(data) == bs.file_size(n_q, 13, K) == bs.OVERHEAD_BYTES + -(-n_q * 13 * int(np.log2(K)) // 8)


def test_envelope_stages_travel_in_the_flags_byte_and_default_to_the_old_bytes():
    codes, plain = make(n_q=12, frames=10)
    assert unpack(plain).envelope_stages == 0 and plain[7] == 0
    ns = 10 * HOP - 7
    data = pack(codes, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=ns, envelope_stages=3)
    assert data[7] == 3 and data[8:-4] == plain[8:-4]
    stream = unpack(data)
    assert stream.envelope_stages == 3 and np.array_equal(stream.codes, codes)
    for bad in (12, 16, -1):
        with pytest.raises(BitstreamError, match="envelope_stages"):
            pack(codes, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=ns, envelope_stages=bad)


def test_extreme_codes_and_empty_stream():
    for K in (2, 1024, 65536):
        codes = np.array([[0, K - 1, 0], [K - 1, K - 1, 0]])
        data = pack(codes, sample_rate=SR, codebook_size=K, hop_length=HOP, num_samples=3 * HOP)
        np.testing.assert_array_equal(unpack(data).codes, codes)
    empty = pack(np.zeros((2, 0), dtype=np.int64), sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=0)
    assert len(empty) == bs.OVERHEAD_BYTES and unpack(empty).codes.shape == (2, 0)


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    codes = torch.randint(0, 1024, (8, 50))
    data = pack(codes, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=50 * HOP)
    np.testing.assert_array_equal(unpack(data).codes, codes.numpy())


# ------------------------------------------------------------------- the documented layout
def test_header_layout_matches_documentation():
    codes, data = make(n_q=3, frames=5, K=1024, num_samples=5 * HOP - 100)
    assert bs.HEADER_BYTES == 28 and bs.OVERHEAD_BYTES == 32
    assert data[0:4] == b"TLC1"
    assert data[4] == 1  # version
    assert data[5] == 3  # n_q
    assert data[6] == 10  # log2(1024)
    assert data[7] == 0  # flags
    assert struct.unpack_from("<I", data, 8)[0] == SR
    assert struct.unpack_from("<H", data, 12)[0] == HOP
    assert struct.unpack_from("<H", data, 14)[0] == 0
    assert struct.unpack_from("<I", data, 16)[0] == 5 * HOP - 100
    assert struct.unpack_from("<I", data, 20)[0] == 5
    plen = struct.unpack_from("<I", data, 24)[0]
    assert plen == (3 * 5 * 10 + 7) // 8 == len(data) - 32
    assert struct.unpack_from("<I", data, 28 + plen)[0] == zlib.crc32(data[: 28 + plen])


def test_payload_is_frame_major_msb_first():
    # K=4 (2 bits). codes[q, t]: frame 0 = (0, 1), frame 1 = (3, 2) -> bits 00 01 11 10
    codes = np.array([[0, 3], [1, 2]])
    data = pack(codes, sample_rate=SR, codebook_size=4, hop_length=HOP, num_samples=2 * HOP)
    assert data[28:-4] == bytes([0b00011110])
    # 10-bit codes straddle bytes: 1023, 0, 1 -> 1111111111 0000000000 0000000001 + 2 zero pad bits
    codes = np.array([[1023], [0], [1]])
    data = pack(codes, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=HOP)
    bits = "1111111111" + "0000000000" + "0000000001" + "00"
    assert data[28:-4] == int(bits, 2).to_bytes(4, "big")


def test_bitrate_helpers():
    assert bs.bits_per_second(8, 1024, 16000, 320) == 8 * 10 * 50 == 4000
    assert bs.bits_per_second(1, 2, 16000, 320) == 50
    _, data = make(n_q=8, frames=50, K=1024)
    b = unpack(data)
    assert b.bits_per_second == 4000 and b.file_size == len(data)
    assert b.duration == pytest.approx((50 * HOP - 7) / SR)


# ---------------------------------------------------------------------- pack-side validation
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(codebook_size=1000), "power of two"),
        (dict(codebook_size=1), "power of two"),
        (dict(codebook_size=131072), "power of two"),
        (dict(sample_rate=0), "sample_rate"),
        (dict(hop_length=0), "hop_length"),
        (dict(hop_length=70000), "hop_length"),
        (dict(num_samples=-1), "num_samples"),
        (dict(num_samples=2**32), "num_samples"),
        (dict(num_samples=10 * HOP + HOP), "do not match"),
        (dict(num_samples=9 * HOP), "do not match"),
    ],
)
def test_pack_rejects_bad_fields(kwargs, match):
    args = dict(sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=10 * HOP)
    args.update(kwargs)
    with pytest.raises(BitstreamError, match=match):
        pack(np.zeros((2, 10), dtype=np.int64), **args)


@pytest.mark.parametrize(
    "codes, match",
    [
        (np.full((2, 10), 1024), r"\[0, 1024\)"),
        (np.full((2, 10), -1), r"\[0, 1024\)"),
        (np.zeros((1, 2, 10), dtype=np.int64), "shape"),
        (np.zeros(10, dtype=np.int64), "shape"),
        (np.zeros((2, 10)), "integers"),
        (np.zeros((0, 10), dtype=np.int64), "n_q"),
        (np.zeros((33, 10), dtype=np.int64), "n_q"),
    ],
)
def test_pack_rejects_bad_codes(codes, match):
    with pytest.raises(BitstreamError, match=match):
        pack(codes, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=10 * HOP)


def test_frames_samples_rule_allows_both_rounding_conventions():
    codes = np.zeros((1, 10), dtype=np.int64)
    for ns in (9 * HOP + 1, 10 * HOP, 11 * HOP - 1):  # ceil and floor framing both fit
        assert unpack(pack(codes, sample_rate=SR, codebook_size=2, hop_length=HOP, num_samples=ns)).num_samples == ns


# ------------------------------------------------------------------------------ corruption
def test_every_single_bit_flip_is_detected():
    _, data = make(n_q=3, frames=6, K=1024)
    assert len(data) < 100
    for i in range(len(data) * 8):
        b = bytearray(data)
        b[i // 8] ^= 1 << (i % 8)
        with pytest.raises(BitstreamError):
            unpack(bytes(b))


def test_every_truncation_is_rejected():
    _, data = make(n_q=3, frames=6, K=1024)
    for n in range(len(data)):
        with pytest.raises(BitstreamError, match="truncated|magic"):
            unpack(data[:n])


@pytest.mark.parametrize("extra", [b"\x00", b"garbage", bytes(1000)])
def test_trailing_bytes_rejected(extra):
    _, data = make()
    with pytest.raises(BitstreamError, match="trailing"):
        unpack(data + extra)


def test_wrong_magic_and_version():
    _, data = make()
    with pytest.raises(BitstreamError, match="not a TeluCodec bitstream"):
        unpack(b"RIFF" + data[4:])
    with pytest.raises(BitstreamError, match="not a TeluCodec bitstream"):
        unpack(b"RIFF\x00\x00")
    with pytest.raises(BitstreamError, match="unsupported .tlc version 3"):  # 2 is entropy-coded (test_entropy.py)
        unpack(recrc(set_field(data, 4, "B", 3)))
    with pytest.raises(BitstreamError, match="expected bytes"):
        unpack("TLC1 not bytes")


@pytest.mark.parametrize(
    "offset, fmt, value, match",
    [
        (5, "B", 0, "n_q"),
        (5, "B", 33, "n_q"),
        (6, "B", 0, "bits per code"),
        (6, "B", 17, "bits per code"),
        (7, "B", 0x10, "reserved"),
        (7, "B", 4, "4 envelope stages of 4 codes"),
        (14, "H", 5, "reserved"),
        (8, "I", 0, "sample rate"),
        (12, "H", 0, "hop length"),
        (16, "I", 99 * HOP, "do not match"),
        (20, "I", 11, "do not match|payload"),
        (5, "B", 5, "payload"),  # n_q changed, payload size no longer fits
        (6, "B", 12, "payload"),
    ],
)
def test_inconsistent_fields_with_valid_crc(offset, fmt, value, match):
    _, data = make(n_q=4, frames=10, K=1024, num_samples=10 * HOP)
    with pytest.raises(BitstreamError, match=match):
        unpack(recrc(set_field(data, offset, fmt, value)))


def test_nonzero_padding_bits_rejected():
    codes = np.array([[1023], [0], [1]])  # 30 bits -> 2 padding bits
    data = bytearray(pack(codes, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=HOP))
    data[-5] |= 0b01
    with pytest.raises(BitstreamError, match="padding"):
        unpack(recrc(bytes(data)))


def test_huge_claims_fail_fast_without_allocating(tmp_path):
    # 32-byte file claiming 4 billion frames and a 4 GiB payload, with a valid CRC over its header.
    header = struct.pack("<4sBBBBIHHIII", b"TLC1", 1, 32, 16, 0, SR, 1, 0, 2**32 - 1, 2**32 - 1, 2**32 - 1)
    lies = [
        header + struct.pack("<I", zlib.crc32(header)),
        recrc(set_field(make()[1], 24, "I", 0)),  # payload length 0 but frames > 0
        header,
    ]  # header only
    path = tmp_path / "lie.tlc"
    path.write_bytes(lies[0])
    tracemalloc.start()
    t0 = time.perf_counter()
    for data in lies:
        with pytest.raises(BitstreamError):
            unpack(data)
    with pytest.raises(BitstreamError, match="lie.tlc: truncated"):
        read_tlc(path)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 1_000_000


# ---------------------------------------------------------------------------------- files
def test_write_read_round_trip_and_atomicity(tmp_path, monkeypatch):
    codes, _ = make(n_q=8, frames=40, K=1024)
    path = tmp_path / "clip.tlc"
    assert write_tlc(path, codes, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=40 * HOP) == path
    out = read_tlc(path)
    np.testing.assert_array_equal(out.codes, codes)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(BitstreamError, match="cannot write .*clip.tlc.*No space"):
        write_tlc(path, codes[:, :5], sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=5 * HOP)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.tlc"]


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(BitstreamError, match="no such file: .*missing.tlc"):
        read_tlc(tmp_path / "missing.tlc")
    with pytest.raises(BitstreamError, match="is a directory"):
        read_tlc(tmp_path)
    _, data = make()
    cases = {
        "short.tlc": data[:10],
        "trail.tlc": data + b"x",
        "flip.tlc": data[:30] + bytes([data[30] ^ 4]) + data[31:],
        "wav.tlc": b"RIFF" + bytes(60),
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(BitstreamError) as info:
            read_tlc(tmp_path / name)
        msg = str(info.value)
        assert name in msg and "\n" not in msg


# ------------------------------------------------------------------------------------ fuzz
VALID = [make(n_q=q, frames=f, K=k, seed=q * f)[1] for q, f, k in [(1, 1, 2), (3, 7, 1024), (2, 5, 65536), (5, 3, 8)]]


def _check(data: bytes):
    """unpack may only succeed (with a canonical, self-consistent result) or raise BitstreamError."""
    try:
        out = unpack(data)
    except BitstreamError as e:
        assert "\n" not in str(e)
        return None
    assert out.codes.shape == (out.n_q, out.num_frames) and out.codes.dtype == np.int64
    assert out.codes.size == 0 or (out.codes.min() >= 0 and out.codes.max() < out.codebook_size)
    again = pack(
        out.codes,
        sample_rate=out.sample_rate,
        codebook_size=out.codebook_size,
        hop_length=out.hop_length,
        num_samples=out.num_samples,
        envelope_stages=out.envelope_stages,
    )
    assert again == data  # accepted streams are canonical
    return out


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(VALID)))
    lo = draw(st.sampled_from([0, 5, 5, 5]))  # mostly keep magic and version intact, to reach deeper checks
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "field", "field"]))
        if op == "flip" and len(data) > lo:
            i = draw(st.integers(lo * 8, len(data) * 8 - 1))
            data[i // 8] ^= 1 << (i % 8)
        elif op == "set" and len(data) > lo:
            data[draw(st.integers(lo, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            i = draw(st.integers(0, len(data) - 1))
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "field" and len(data) >= 28:
            off, fmt = draw(
                st.sampled_from(
                    [(5, "B"), (6, "B"), (7, "B"), (8, "I"), (12, "H"), (14, "H"), (16, "I"), (20, "I"), (24, "I")]
                )
            )
            bound = {"B": 255, "H": 0xFFFF, "I": 0xFFFFFFFF}[fmt]
            value = draw(st.one_of(st.integers(0, 64), st.integers(0, bound)))
            struct.pack_into("<" + fmt, data, off, value)
    if draw(st.booleans()) and len(data) >= 4:  # half the time, make the CRC agree again
        data = bytearray(recrc(bytes(data)))
    return bytes(data)


def fuzz(n):
    # database=None: nothing is written into the repository (.hypothesis/)
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@fuzz(1500)
@given(mutated())
def test_fuzz_mutated_streams(data):
    _check(data)


@fuzz(1000)
@given(
    st.one_of(
        st.binary(max_size=80),
        st.binary(max_size=60).map(lambda b: b"TLC1\x01" + b),
        st.binary(min_size=23, max_size=60).map(lambda b: recrc(b"TLC1\x01" + b)),
    )
)
def test_fuzz_random_bytes(data):
    _check(data)
