"""Model shapes, bitrate arithmetic, the output-scale switch and the encode/decode API."""

import numpy as np
import pytest
import torch

import telucodec
from telucodec.codec.model import Codec
from telucodec.config import PRESETS
from telucodec.fixes import SEVEN, Fixes


@pytest.mark.parametrize("name", ["ci", "cpu", "cpu-deep", "small", "full"])
def test_presets_keep_6_3_1p5_kbps(name):
    cfg = PRESETS[name].codec
    assert cfg.hop_length == 320 and cfg.frame_rate == 50
    assert [cfg.bitrate(n) for n in (3, 6, 12)] == [1500, 3000, 6000]
    assert [cfg.n_q_for_kbps(k) for k in (1.5, 3, 6)] == [3, 6, 12]


def test_forward_shapes_and_odd_lengths():
    torch.manual_seed(0)
    m = Codec(PRESETS["ci"].codec, Fixes.all())
    x = torch.randn(2, 1, 8000 + 13) * 0.1
    out = m(x, n_q=6)
    assert out["wav"].shape == x.shape
    assert out["codes"].shape == (2, 6, (8000 + 13 + 319) // 320)
    assert torch.isfinite(out["vq_loss"])


def test_output_scale_switch():
    assert Codec(PRESETS["ci"].codec, Fixes.none()).decoder.output_scale is None
    s = Codec(PRESETS["ci"].codec, Fixes.none(output_scale=True)).decoder.output_scale
    assert isinstance(s, torch.nn.Parameter) and float(s) == 3.0
    # tanh bounds the broken decoder to (-1, 1); the scaled one can reach beyond
    torch.manual_seed(0)
    for fixes, bound in ((Fixes.none(), 1.0), (Fixes.none(output_scale=True), 3.0)):
        m = Codec(PRESETS["ci"].codec, fixes)
        with torch.no_grad():
            m.decoder.body[-1].bias.fill_(10.0)
            y = m.decoder(torch.zeros(1, PRESETS["ci"].codec.latent_dim, 4))
        assert float(y.max()) == pytest.approx(bound, rel=1e-3)


def test_fixes_parse_and_combine():
    assert Fixes.parse("none") == Fixes.none() and Fixes.parse("all") == Fixes.all()
    f = Fixes.parse("codebook_loss,output_scale")
    assert f.enabled() == ["codebook_loss", "output_scale"]
    assert Fixes.parse("all-output_scale").enabled() == [n for n in SEVEN if n != "output_scale"]
    with pytest.raises(ValueError):
        Fixes.parse("codebook_los")
    # every single switch, alone, builds and runs
    torch.manual_seed(0)
    x = torch.randn(1, 1, 3200) * 0.1
    for name in SEVEN:
        out = Codec(PRESETS["ci"].codec, Fixes.none().with_(**{name: True}))(x)
        assert torch.isfinite(out["wav"]).all()


def test_quantizer_dropout_draws_from_the_bitrate_choices():
    torch.manual_seed(0)
    m = Codec(PRESETS["ci"].codec, Fixes.all()).train()
    draws = {m.sample_n_q() for _ in range(200)}
    assert draws == {3, 6, 12}
    m.eval()
    assert m.sample_n_q() == 12


def test_encode_decode_numpy_api_and_resampling():
    model = telucodec.CodecModel.untrained("ci")
    wav = (0.1 * np.sin(2 * np.pi * 200 * np.arange(44100) / 44100)).astype(np.float32)
    for kbps, n_q in ((1.5, 3), (3, 6), (6, 12)):
        codes = model.encode(wav, 44100, kbps=kbps)
        assert codes.shape == (n_q, 50) and codes.dtype == np.int64
        out = model.decode(codes, 16000)
        assert out.shape == (16000,) and np.isfinite(out).all()
    with pytest.raises(telucodec.TeluCodecError):
        model.encode(wav, 44100, kbps=4.2)
    with pytest.raises(telucodec.TeluCodecError):
        model.encode(np.full(100, np.nan, np.float32), 16000)


def test_safetensors_export_round_trip(tmp_path):
    from telucodec.coding.inference import export_safetensors, load

    model = telucodec.CodecModel.untrained("ci", seed=3)
    export_safetensors(model, tmp_path / "m.safetensors", {"note": "test"})
    again = load(tmp_path / "m.safetensors")
    for k, v in model.codec.state_dict().items():
        assert torch.equal(v, again.codec.state_dict()[k])
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    assert np.array_equal(model.encode(x, 16000), again.encode(x, 16000))


def test_compact_export_halves_the_file_and_loads_float32_weights_that_decode_alike(tmp_path):
    from telucodec.coding.inference import export_safetensors, load

    model = telucodec.CodecModel.untrained("ci", seed=3)
    export_safetensors(model, tmp_path / "full.safetensors")
    export_safetensors(model, tmp_path / "compact.safetensors", compact=True)
    full, compact = (tmp_path / "full.safetensors").stat().st_size, (tmp_path / "compact.safetensors").stat().st_size
    assert compact < 0.5 * full
    again = load(tmp_path / "compact.safetensors")
    assert again.metadata["stored_as"] == "compact"
    for k, v in model.codec.state_dict().items():
        got = again.codec.state_dict()[k]
        assert got.dtype == v.dtype  # float32 in memory
        if k.endswith(("ema_count", "ema_sum")):  # not stored: restarted from the codebook, as k-means leaves them
            stage = k.rsplit(".", 1)[0]
            cb = again.codec.state_dict()[stage + ".codebook"]
            assert torch.equal(got, cb if k.endswith("ema_sum") else torch.ones_like(got))
        elif v.is_floating_point():
            assert torch.equal(got, v.half().to(v.dtype))
        else:
            assert torch.equal(got, v)
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    y_full, y_compact = model.decode(model.encode(x, 16000), len(x)), again.decode(again.encode(x, 16000), len(x))
    assert np.abs(y_full - y_compact).max() < 0.05 * np.abs(y_full).max() + 1e-6
    model.codec.decoder.body[0].weight.data[0] = 1e6  # out of float16's range: refused, not stored as inf
    with pytest.raises(ValueError, match="do not fit float16"):
        export_safetensors(model, tmp_path / "bad.safetensors", compact=True)


def test_a_checkpoint_missing_a_weight_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from telucodec.coding.inference import export_safetensors, load

    export_safetensors(telucodec.CodecModel.untrained("ci", seed=3), tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        meta = f.metadata()
    tensors = load_file(tmp_path / "m.safetensors")
    del tensors[next(k for k in tensors if k.endswith(".codebook"))]
    meta.pop("telucodec_sha256", None)
    save_file(tensors, tmp_path / "bad.safetensors", meta)
    with pytest.raises(telucodec.CheckpointError, match="not a TeluCodec checkpoint"):
        load(tmp_path / "bad.safetensors")


def test_load_without_shipped_checkpoint_is_a_clear_error(monkeypatch, tmp_path):
    import telucodec.coding.inference as inf

    monkeypatch.setattr(inf, "PRETRAINED", tmp_path / "absent.safetensors")
    with pytest.raises(telucodec.CheckpointError, match="no pretrained checkpoint"):
        telucodec.load()


def test_istft_head_makes_the_waveform_from_a_magnitude_and_a_phase_per_bin(tmp_path):
    """`istft_blocks` keeps that many upsampling blocks and ends in an inverse STFT: lengths are kept, a magnitude
    raised in one bin raises the output's level in that bin only, weight norm folds without changing the output,
    and a bad block count is a one-line error."""
    from dataclasses import replace

    from telucodec.coding.inference import export_safetensors, load

    cfg = replace(PRESETS["ci"].codec, istft_blocks=1, weight_norm=True)  # strides 4, 8, 10: keeps the 10
    assert cfg.istft_hop == 32 and cfg.hop_length == 320
    torch.manual_seed(0)
    m = Codec(cfg, Fixes.all()).eval()
    assert m.decoder.n_fft == 128 and m.decoder.body[-1].out_channels == 2 * 65
    x = torch.randn(2, 1, 8000 + 13) * 0.1
    with torch.no_grad():
        y = m(x, n_q=12)["wav"]
        assert y.shape == x.shape and torch.isfinite(y).all()
        frames = 25 * 10  # 0.5 s at 50 Hz, x 10
        h = torch.zeros(1, 130, frames)
        h[:, :65] = -20.0  # every bin silent...
        h[:, 16] = 4.0  # ...but bin 16 (2 kHz)
        tone = m.decoder._inverse_stft(h)[0, 0, 64:-64].numpy()
    spectrum = np.abs(np.fft.rfft(tone))
    assert abs(np.argmax(spectrum) * 16000 / len(tone) - 2000) < 150
    with torch.no_grad():
        z = m.encoder(m._pad(x)[0])
        before = m.decoder(z)
        m.fold_weight_norm()
        assert torch.allclose(before, m.decoder(z), atol=1e-5)
    model = telucodec.CodecModel(m, source="istft")
    export_safetensors(model, tmp_path / "istft.safetensors", {"note": "test"})
    again = load(tmp_path / "istft.safetensors")
    assert again.config.istft_blocks == 1
    signal = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    assert np.allclose(
        model.decode(model.encode(signal, 16000), 8000), again.decode(again.encode(signal, 16000), 8000), atol=1e-6
    )
    with pytest.raises(ValueError, match="istft_blocks must be in 0..2"):
        replace(PRESETS["ci"].codec, istft_blocks=3)
