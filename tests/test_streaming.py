"""Issue 28: any length in bounded memory (telucodec.coding.streaming, the streaming .tlc helpers, the CLI).

* the receptive field is measured, and tight: a sample (code frame) just outside it changes nothing, one at its
  edge changes the frame;
* chunked encode/decode equals one piece: codes identical, samples within float rounding, for the conv head, the
  conv head with envelope codebooks, the envelope post-filter and the vocos head, on lengths that end mid-frame;
* the streaming API gives the same codes and samples whatever the push sizes, and its stated delay is the measured
  one;
* TlcWriter writes pack()'s bytes; TlcReader reads them back; a truncated .tlc decodes what arrived, with a warning
  naming the file; the CLI streams and gives the API's codes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from telucodec.cli import commands as cli
from telucodec.codec.model import Codec
from telucodec.coding import audio_blocks, receptive_field, streaming, tlcfile, tlcreader, tlcwriter
from telucodec.coding.inference import ONE_SPEAKER, PRETRAINED, CodecModel, export_safetensors, load
from telucodec.config import preset
from telucodec.errors import BitstreamError, TeluCodecError
from telucodec.fixes import Fixes

SR, HOP = 16000, 320
CI = preset("ci").codec
VARIANTS = {
    "conv": CI,
    "vocos": dataclasses.replace(CI, head="vocos", head_dim=32, head_layers=2, encoder_layers=1, encoder_dim=32),
    "envelope": dataclasses.replace(CI, envelope_split=((3, 1), (6, 2), (12, 3))),
    "postfilter": dataclasses.replace(CI, postfilter_bands=32),
}


def tiny(name: str) -> CodecModel:
    torch.manual_seed(0)
    codec = Codec(VARIANTS[name], Fixes.all())
    with torch.no_grad():
        if codec.envelope is not None:  # unfitted codebooks are all zero: make them codes
            codec.envelope.codebooks.normal_(-4.0, 2.0, generator=torch.Generator().manual_seed(1))
        if codec.postfilter is not None:  # its last layer starts at zero (out = raw): wake it
            codec.postfilter.head[-1].weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
    return CodecModel(codec, source=f"tiny {name}")


@pytest.fixture(scope="module")
def models():
    return {name: tiny(name) for name in VARIANTS}


def speech_like(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / SR
    f0 = 120 + 20 * seed + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 9)) * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t + seed))
    x += 0.02 * np.random.default_rng(seed).standard_normal(n)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


# ------------------------------------------------------------------------------------ receptive field
@pytest.mark.parametrize("name", ["conv", "vocos"])
def test_measured_receptive_field_is_tight(models, name):
    model = models[name]
    codec, ctx = model.codec, receptive_field.context(model)
    assert ctx.hop_length == HOP and ctx.encoder_right > 0 and ctx.decoder_right > 0
    frames, c = 40, 20
    x = torch.from_numpy(speech_like(frames * HOP))[None, None]
    with torch.no_grad():
        z = codec.encoder(x)[..., c]

        def moved(i):  # does frame c's latent move when sample i does?
            y = x.clone()
            y[..., i] += 0.5
            return not torch.equal(codec.encoder(y)[..., c], z)

        last = (c + 1) * HOP - 1
        assert moved(last + ctx.encoder_right) and not moved(last + ctx.encoder_right + 1)
        assert moved(c * HOP - ctx.encoder_left) and not moved(c * HOP - ctx.encoder_left - 1)
        latent = torch.randn(1, CI.latent_dim, frames, generator=torch.Generator().manual_seed(0))
        out = codec.decoder(latent)[..., c * HOP : (c + 1) * HOP]

        def heard(j):  # do frame c's samples move when code frame j does?
            lat = latent.clone()
            lat[..., j] += 0.5
            return not torch.equal(codec.decoder(lat)[..., c * HOP : (c + 1) * HOP], out)

        assert heard(c + ctx.decoder_right) and not heard(c + ctx.decoder_right + 1)
        assert heard(c - ctx.decoder_left) and not heard(c - ctx.decoder_left - 1)
    if name == "vocos":  # ConvNeXt blocks at the frame rate see further
        assert ctx.decoder_right > receptive_field.context(models["conv"]).decoder_right


@pytest.mark.skipif(not ONE_SPEAKER.exists(), reason="no first shipped model")
def test_first_shipped_model_delay_as_its_layers_give_it():
    ctx = receptive_field.context(load(ONE_SPEAKER))
    # encoder: 612 samples (38.25 ms) of look-ahead; decoder: 6 frames measured + 1 for the envelope gains' drift
    assert (ctx.encoder_left, ctx.encoder_right, ctx.decoder_left, ctx.decoder_right) == (612, 612, 7, 7)
    assert ctx.algorithmic_delay_samples == 320 + 612 + 7 * 320  # 198.25 ms at 16 kHz


@pytest.mark.skipif(not PRETRAINED.exists(), reason="no shipped model")
def test_shipped_model_delay_is_the_one_the_book_prints():
    import re
    from pathlib import Path

    ctx = receptive_field.context(load())
    page = (Path(__file__).resolve().parent.parent / "book" / "using_the_package.md").read_text()
    samples, ms = re.search(r"algorithmic delay: (\d+) samples at 16 kHz, (\d+) ms", page).groups()
    assert ctx.algorithmic_delay_samples == int(samples) and round(int(samples) / 16) == int(ms)


# ------------------------------------------------------------------------------- chunked == whole
LENGTHS = [3 * SR + 123, 4 * SR + 319, 5 * SR, 50 * 321]  # three end mid-frame


@pytest.mark.parametrize("name", list(VARIANTS))
def test_chunked_equals_whole_file(models, name):
    model = models[name]
    for i, n in enumerate(LENGTHS):
        x = speech_like(n, seed=i)
        whole = model.encode(x, SR, chunk_seconds=0)
        chunked = model.encode(x, SR, chunk_seconds=0.5)  # 25-frame pieces: boundaries everywhere
        assert whole.shape == (12, math.ceil(n / HOP))
        np.testing.assert_array_equal(chunked, whole, err_msg=f"{name}, {n} samples")
        for num_samples in (n, None):
            y_whole = model.decode(whole, num_samples, chunk_seconds=0)
            y_chunked = model.decode(whole, num_samples, chunk_seconds=0.5)
            assert y_chunked.shape == y_whole.shape == ((n if num_samples else whole.shape[1] * HOP),)
            np.testing.assert_allclose(y_chunked, y_whole, rtol=1e-4, atol=1e-5, err_msg=f"{name}, {n} samples")
        assert np.abs(y_whole).max() > 1e-3  # not trivially equal


class LatentEncoder(streaming.StreamEncoder):
    """The stream encoder's pieces, but giving out the continuous latent (and envelope) instead of codes: the
    codes' argmin would hide a piece that is a sample short."""

    def _encode_piece(self, piece):
        x = torch.from_numpy(piece)[None, None]
        return whole_latent(self.codec, x)


def whole_latent(codec, x):
    x = torch.nn.functional.pad(x, (0, (-x.shape[-1]) % HOP))
    with torch.no_grad():
        z = codec.encoder(x)
        if codec.envelope is not None:
            z = torch.cat([z, codec.envelope.envelope(x, z.shape[-1])], 1)
    return z[0].numpy()


@pytest.mark.parametrize("name", ["conv", "envelope", "vocos"])
def test_encoder_pieces_see_what_the_whole_file_sees(models, name):
    x = speech_like(3 * SR + 123)
    want = whole_latent(models[name].codec, torch.from_numpy(x)[None, None])
    for min_frames in (1, 25):
        enc = LatentEncoder(models[name], min_frames=min_frames, max_frames=25)
        got = np.concatenate([enc.push(x[:20000]), enc.push(x[20000:]), enc.flush()], axis=1)
        # float rounding only (kernels differ with the length); a piece a frame short of context is off by ~1e-2
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_too_little_context_would_be_caught(models, monkeypatch):
    """The equality above is not automatic: with one frame less of decoder context the pieces disagree."""
    model = models["conv"]
    x = speech_like(3 * SR + 123)
    codes = model.encode(x, SR, chunk_seconds=0)
    ctx = receptive_field.context(model)
    short = dataclasses.replace(ctx, decoder_left=ctx.decoder_left - 1, decoder_right=ctx.decoder_right - 1)
    monkeypatch.setitem(receptive_field._CONTEXTS, model.codec, short)
    y = model.decode(codes, len(x), chunk_seconds=0.5)
    assert np.abs(y - model.decode(codes, len(x), chunk_seconds=0)).max() > 1e-4


# ----------------------------------------------------------------------------------- streaming API
@pytest.mark.parametrize("name", ["conv", "envelope", "vocos"])
def test_stream_round_trip_any_push_sizes(models, name):
    model = models[name]
    n = 2 * SR + 777
    x = speech_like(n, seed=3)
    want_codes = model.encode(x, SR, kbps=3, chunk_seconds=0)
    enc = model.stream_encoder(kbps=3)
    rng = np.random.default_rng(0)
    got, at = [], 0
    while at < n:
        k = int(rng.choice([1, 7, 320, 333, 2000]))
        got.append(enc.push(x[at : at + k]))
        at += k
    got.append(enc.flush())
    codes = np.concatenate(got, axis=1)
    np.testing.assert_array_equal(codes, want_codes)
    assert enc.samples_in == n and enc.frames_out == codes.shape[1]

    want = model.decode(codes, n, chunk_seconds=0)
    dec = model.stream_decoder(n_q=codes.shape[0], num_frames=codes.shape[1], num_samples=n)
    out, at = [], 0
    while at < codes.shape[1]:
        k = int(rng.choice([1, 2, 5, 13]))
        out.append(dec.push(codes[:, at : at + k]))
        at += k
    out.append(dec.flush())
    y = np.concatenate(out)
    assert y.shape == (n,) and dec.samples_out == n
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)

    live = model.stream_decoder()  # length unknown: the time-aligned gain step
    y_live = np.concatenate([live.push(codes[:, :30]), live.push(codes[:, 30:]), live.flush()])
    assert y_live.shape == (codes.shape[1] * HOP,)
    if name == "envelope":  # close, not equal: the whole file's step is T/(2T+1)
        assert np.abs(y_live[:n] - want).max() < 0.05 * np.abs(want).max()
    else:
        np.testing.assert_allclose(y_live[:n], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["conv", "vocos"])
def test_stated_delay_is_the_measured_delay(models, name):
    d = streaming.measure_delay(models[name], seconds=0.6, block=1)
    ctx = receptive_field.context(models[name])
    assert d["encoder_delay_samples"] == HOP + ctx.encoder_right == d["encoder_delay_measured_samples"]
    assert d["decoder_delay_samples"] == ctx.decoder_right * HOP == d["decoder_delay_measured_samples"]
    assert d["frames_before_end"] > 0


def test_streams_refuse_bad_input_with_one_line(models):
    model = models["conv"]
    enc = model.stream_encoder()
    with pytest.raises(TeluCodecError, match="NaN"):
        enc.push(np.array([0.0, np.nan], np.float32))
    with pytest.raises(TeluCodecError, match="no samples"):
        model.stream_encoder().flush()
    with pytest.raises(TeluCodecError, match="codebook_size"):
        model.stream_decoder().push(np.full((3, 2), 5000))
    dec = model.stream_decoder(n_q=3, num_frames=2)
    with pytest.raises(TeluCodecError, match="declared"):
        dec.push(np.zeros((3, 3), np.int64))
    with pytest.raises(TeluCodecError, match="chunk_seconds"):
        model.encode(np.zeros(SR, np.float32), SR, chunk_seconds=-1)


# ------------------------------------------------------------------------------------ .tlc streaming
@pytest.mark.parametrize("n_q, codebook_size", [(3, 1024), (6, 1024), (12, 1024), (5, 2), (7, 65536), (2, 256)])
def test_tlc_writer_writes_packs_bytes_and_reader_reads_them(tmp_path, n_q, codebook_size):
    rng = np.random.default_rng(n_q)
    frames = 101
    codes = rng.integers(0, codebook_size, (n_q, frames))
    path = tmp_path / "s.tlc"
    with tlcwriter.TlcWriter(
        path, n_q=n_q, sample_rate=SR, codebook_size=codebook_size, hop_length=HOP, envelope_stages=1 if n_q > 1 else 0
    ) as w:
        at = 0
        for k in (1, 0, 3, 17, 80):
            w.write(codes[:, at : at + k])
            at += k
        w.finish(frames * HOP - 100)
    want = tlcfile.pack(
        codes,
        sample_rate=SR,
        codebook_size=codebook_size,
        hop_length=HOP,
        num_samples=frames * HOP - 100,
        envelope_stages=1 if n_q > 1 else 0,
    )
    assert path.read_bytes() == want
    assert not list(tmp_path.glob("*.tmp-*"))
    r = tlcreader.TlcReader(path)
    assert not r.truncated and (r.num_frames, r.num_samples, r.n_q) == (frames, frames * HOP - 100, n_q)
    for size in (1, 8, 1000):
        np.testing.assert_array_equal(np.concatenate(list(r.blocks(size)), axis=1), codes)


def test_tlc_writer_refuses_what_pack_refuses_and_leaves_nothing(tmp_path):
    path = tmp_path / "x.tlc"
    with pytest.raises(BitstreamError, match="lie in"):
        with tlcwriter.TlcWriter(path, n_q=2, sample_rate=SR, codebook_size=1024, hop_length=HOP) as w:
            w.write(np.array([[1, 2], [3, 1024]]))
    w = tlcwriter.TlcWriter(path, n_q=2, sample_rate=SR, codebook_size=1024, hop_length=HOP)
    w.write(np.zeros((2, 4), np.int64))
    with pytest.raises(BitstreamError, match="do not match"):
        w.finish(10 * HOP)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_tlc_reader_keeps_every_check_of_read_tlc(tmp_path):
    data = tlcfile.pack(
        np.arange(30).reshape(3, 10) % 1024, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=3200
    )
    cases = {"crc": bytearray(data), "trailing": data + b"\0", "magic": b"XXXX" + data[4:]}
    cases["crc"][40] ^= 1
    for name, blob in cases.items():
        (tmp_path / f"{name}.tlc").write_bytes(bytes(blob))
        with pytest.raises(BitstreamError) as strict:
            tlcfile.read_tlc(tmp_path / f"{name}.tlc")
        with pytest.raises(BitstreamError) as streamed:
            tlcreader.TlcReader(tmp_path / f"{name}.tlc")
        assert str(streamed.value) == str(strict.value)
    for cut in (0, 10, 27, 28, 29):  # no whole frame (30 bits) arrived
        (tmp_path / "cut.tlc").write_bytes(data[:cut])
        with pytest.raises(BitstreamError, match="cut.tlc: truncated"):
            tlcreader.TlcReader(tmp_path / "cut.tlc")


def test_truncated_tlc_gives_the_frames_that_arrived_with_a_warning(tmp_path):
    codes = np.random.default_rng(0).integers(0, 1024, (3, 10))
    data = tlcfile.pack(codes, sample_rate=SR, codebook_size=1024, hop_length=HOP, num_samples=3100)
    for cut, frames, samples in ((len(data) - 1, 10, 3100), (len(data) - 7, 9, 9 * HOP), (28 + 4, 1, HOP)):
        path = tmp_path / "cut.tlc"
        path.write_bytes(data[:cut])
        with pytest.warns(tlcreader.TruncatedStreamWarning, match=r"cut\.tlc: truncated"):
            r = tlcreader.TlcReader(path)
        assert r.truncated and (r.num_frames, r.num_samples) == (frames, samples)
        np.testing.assert_array_equal(r.read_all().codes, codes[:, :frames])
    # a writer that never finished (killed): its header still says UNFINISHED
    w = tlcwriter.TlcWriter(tmp_path / "live.tlc", n_q=3, sample_rate=SR, codebook_size=1024, hop_length=HOP)
    w.write(codes)
    w._f.flush()
    (tmp_path / "killed.tlc").write_bytes(w._tmp.read_bytes())
    w.abort()
    with pytest.warns(tlcreader.TruncatedStreamWarning, match="never finished"):
        r = tlcreader.TlcReader(tmp_path / "killed.tlc")
    assert r.num_frames == 8  # 8 x 30 bits are whole bytes; 2 wait for more
    with pytest.raises(BitstreamError, match="truncated"):
        tlcfile.read_tlc(tmp_path / "killed.tlc")  # the strict reader stays strict


# ---------------------------------------------------------------------------------------------- CLI
def run(args, capsys):
    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, [line for line in err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def envelope_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny_envelope.safetensors"
    export_safetensors(tiny("envelope"), path)
    return path


def test_cli_streams_and_gives_the_api_result(tmp_path, capsys, monkeypatch, envelope_checkpoint):
    monkeypatch.setattr(streaming, "DEFAULT_CHUNK_SECONDS", 0.5)  # several pieces and blocks on a short file
    monkeypatch.setattr(audio_blocks, "BLOCK_SECONDS", 0.3)
    n = 44100 * 3 + 17
    stereo = np.stack([speech_like(n, 1), speech_like(n, 2)], 1)
    sf.write(tmp_path / "in.flac", stereo, 44100)
    rc, out, err = run(
        ["encode", tmp_path / "in.flac", tmp_path / "x.tlc", "--checkpoint", envelope_checkpoint, "--kbps", 3], capsys
    )
    assert rc == 0 and err == [], err
    model = load(envelope_checkpoint)
    from telucodec.data.audio_io import read_audio

    wav = read_audio(tmp_path / "in.flac", SR)
    stream = tlcfile.read_tlc(tmp_path / "x.tlc")
    assert stream.num_samples == wav.size and stream.envelope_stages == 2
    np.testing.assert_array_equal(stream.codes, model.encode(wav, SR, kbps=3, chunk_seconds=0))
    rc, out, err = run(["decode", tmp_path / "x.tlc", tmp_path / "y.wav", "--checkpoint", envelope_checkpoint], capsys)
    assert rc == 0 and err == [], err
    y, sr = sf.read(tmp_path / "y.wav", dtype="float32")
    want = np.clip(model.decode(stream.codes, stream.num_samples, chunk_seconds=0), -1, 1)
    assert sr == SR and y.shape == want.shape
    assert np.abs(y - want).max() <= 1.5 / 32768  # 16-bit PCM rounding
    # cut off: the frames that arrived, one warning line naming the file; no frame at all: one error line
    data = (tmp_path / "x.tlc").read_bytes()
    (tmp_path / "cut.tlc").write_bytes(data[: len(data) // 2])
    rc, out, err = run(
        ["decode", tmp_path / "cut.tlc", tmp_path / "cut.wav", "--checkpoint", envelope_checkpoint], capsys
    )
    assert rc == 0 and len(err) == 1 and err[0].startswith("warning: ") and "cut.tlc: truncated" in err[0], err
    arrived = (len(data) // 2 - 28) * 8 // (6 * 10)
    y_cut, _ = sf.read(tmp_path / "cut.wav", dtype="float32")
    assert y_cut.size == arrived * HOP and 0 < arrived < stream.num_frames
    want_cut = np.clip(model.decode(stream.codes[:, :arrived], arrived * HOP, chunk_seconds=0), -1, 1)
    assert np.abs(y_cut - want_cut).max() <= 1.5 / 32768
    (tmp_path / "head.tlc").write_bytes(data[:28])
    rc, out, err = run(
        ["decode", tmp_path / "head.tlc", tmp_path / "h.wav", "--checkpoint", envelope_checkpoint], capsys
    )
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and "head.tlc" in err[0], err
    assert not (tmp_path / "h.wav").exists()
    # bad audio in: one line naming the file, no .tlc left behind
    (tmp_path / "notes.wav").write_text("not audio\n" * 50)
    rc, out, err = run(
        ["encode", tmp_path / "notes.wav", tmp_path / "n.tlc", "--checkpoint", envelope_checkpoint], capsys
    )
    assert rc == 2 and len(err) == 1 and "notes.wav" in err[0] and "not a readable" in err[0], err
    assert not list(tmp_path.glob("n.tlc*"))


def test_the_books_streaming_example_runs_and_matches_the_file_length(tmp_path, monkeypatch):
    """The live-audio listing of book/using_the_package.md, run as printed on a 1.3 s file."""
    import re
    from pathlib import Path

    import soundfile as sf

    page = (Path(__file__).resolve().parent.parent / "book" / "using_the_package.md").read_text()
    code = re.search(r"For live audio.*?```python\n(.*?)```", page, re.S).group(1)
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "speech.wav", (0.1 * rng.standard_normal(20800)).astype("float32"), 16000)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "using_the_package.md", "exec"), {})
    assert sf.info(str(tmp_path / "speech_streamed.wav")).frames == 20800
