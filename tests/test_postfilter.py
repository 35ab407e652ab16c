"""The envelope post-filter (telucodec.codec.postfilter; the `envelope_postfilter` ingredient)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import telucodec
from telucodec import Fixes
from telucodec.codec.model import Codec
from telucodec.codec.postfilter import EnvelopePostfilter, envelope_loss
from telucodec.config import PRESETS

SR = 16000


def _tone(freq, seconds=0.5, amplitude=0.1):
    t = torch.arange(int(seconds * SR)) / SR
    return (amplitude * torch.sin(2 * torch.pi * freq * t))[None, None]


def test_log_envelope_puts_a_tone_in_its_band_and_floors_silence_60_db_under_the_peak():
    pf = EnvelopePostfilter(latent_dim=8, hop_length=320, n_bands=32)
    assert (pf.hop, pf.n_fft) == (160, 640)
    env = pf.log_envelope(_tone(2000.0))[0]  # (bands, frames)
    centre = env[:, 10:-10].mean(1)
    hz = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 34) / 2595) - 1)  # HTK band edges
    band = int(np.searchsorted(hz, 2000.0)) - 1
    assert int(centre.argmax()) in (band - 1, band, band + 1)
    assert float(centre.max() - centre.min()) == pytest.approx(np.log(1e6), abs=0.5)  # the 60 dB floor


def test_postfilter_starts_as_the_identity_and_its_gain_reaches_only_the_band_it_raises():
    torch.manual_seed(0)
    pf = EnvelopePostfilter(latent_dim=8, hop_length=320, n_bands=32)
    raw = 0.05 * torch.randn(2, 1, 8000)
    latent = torch.randn(2, 8, 25)
    out, predicted = pf(raw, latent)
    assert out.shape == raw.shape and torch.allclose(out, raw, atol=1e-5)
    assert torch.allclose(predicted, pf.log_envelope(raw), atol=1e-5)
    with torch.no_grad():  # raise band 20 by 2 nats of energy (8.7 dB)
        pf.head[-1].bias[20] = 2.0
        pf.head[-1].bias[32 + 20] = 2.0
        out, _ = pf(raw, latent)
        gain = (pf.log_envelope(out) - pf.log_envelope(raw))[..., 5:-5].mean((0, 2))
    assert 1.0 < float(gain[20]) < 2.5 and float(gain[:15].abs().max()) < 0.05 and float(gain[26:].abs().max()) < 0.05


def test_the_envelope_loss_trains_the_head_to_the_input_envelope_and_never_reaches_the_raw_output():
    """The head learns a band gain that the decoder's output lacks (the input is 4x louder in one tone): the loss
    falls and the post-filtered output's level follows; the raw output gets no gradient."""
    torch.manual_seed(0)
    pf = EnvelopePostfilter(latent_dim=8, hop_length=320, n_bands=32)
    ref = _tone(1500.0) + _tone(300.0)
    raw = (_tone(1500.0) / 4 + _tone(300.0)).requires_grad_(True)
    latent = torch.ones(1, 8, 25)
    opt = torch.optim.Adam(pf.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        _, predicted = pf(raw, latent)
        loss = envelope_loss(pf, predicted, ref)
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first and raw.grad is None
    out, _ = pf(raw, latent)
    level = lambda w: float(np.abs(np.fft.rfft(w.detach().numpy().ravel()))[750])  # the 1500 Hz bin of 0.5 s
    assert level(out) > 2.5 * level(raw)


def test_codec_with_postfilter_decodes_its_codes_as_its_forward_pass_and_survives_export(tmp_path):
    from telucodec.coding.inference import export_safetensors, load

    cfg = replace(PRESETS["ci"].codec, postfilter_bands=16)
    torch.manual_seed(0)
    m = Codec(cfg, Fixes.all()).eval()
    assert "postfilter" in m.parameter_groups()
    with torch.no_grad():
        torch.nn.init.normal_(m.postfilter.head[-1].weight, std=0.05)  # a head that does something
        x = torch.randn(1, 1, 8000 + 13) * 0.1
        out = m(x, n_q=12)
        assert out["wav"].shape == x.shape and out["wav_raw"].shape == x.shape
        assert not torch.allclose(out["wav"], out["wav_raw"], atol=1e-4)
        y = m.decode_tensor(m.encode_tensor(x, 12), x.shape[-1])
    assert torch.allclose(y, out["wav"], atol=1e-5)
    model = telucodec.CodecModel(m, source="postfilter")
    export_safetensors(model, tmp_path / "pf.safetensors", {"note": "test"})
    again = load(tmp_path / "pf.safetensors")
    assert again.config.postfilter_bands == 16
    signal = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    assert np.allclose(
        model.decode(model.encode(signal, SR), 8000), again.decode(again.encode(signal, SR), 8000), atol=1e-6
    )
    with pytest.raises(ValueError, match="postfilter_bands must be >= 0"):
        replace(cfg, postfilter_bands=-1)


def test_training_with_the_postfilter_logs_its_loss_and_can_start_from_a_codec_without_one(tmp_path):
    from telucodec.coding.inference import export_safetensors
    from telucodec.training.loop import fit
    from telucodec.training.recipes import recipe

    r = recipe("working", "ci", with_=("envelope_postfilter",))
    assert r.codec.postfilter_bands == 32 and "envelope_postfilter" in r.ingredients
    base = recipe("working", "ci")
    clips = [0.1 * np.sin(2 * np.pi * f * np.arange(SR) / SR).astype(np.float32) for f in (220.0, 330.0, 1700.0)]
    short = lambda t, n: replace(t, steps=n, eval_clips=1)
    first = fit(
        "ci",
        base.fixes,
        (clips, clips[:1]),
        codec_config=replace(base.codec, kmeans_buffer=0),
        train_config=short(base.train, 3),
        checkpoint_dir=tmp_path,
        experiment_name="base",
        print_epochs=False,
    )
    export_safetensors(telucodec.CodecModel(first.model, source="base"), tmp_path / "base.safetensors", {})
    pf_codec = replace(r.codec, kmeans_buffer=0)
    start = fit(
        "ci",
        r.fixes,
        (clips, clips[:1]),
        codec_config=pf_codec,
        train_config=short(r.train, 0),
        checkpoint_dir=tmp_path,
        experiment_name="pf0",
        print_epochs=False,
        init_from=tmp_path / "base.safetensors",
    )
    x = torch.from_numpy(clips[2])[None, None]
    with torch.no_grad():
        a, b = first.model.eval()(x, n_q=12), start.model.eval()(x, n_q=12)
    assert torch.allclose(a["wav"], b["wav_raw"], atol=1e-5) and torch.allclose(b["wav"], b["wav_raw"], atol=1e-5)
    run = fit(
        "ci",
        r.fixes,
        (clips, clips[:1]),
        codec_config=pf_codec,
        train_config=short(r.train, 4),
        log_every=1,
        checkpoint_dir=tmp_path,
        experiment_name="pf",
        print_epochs=False,
    )
    logged = [rec for rec in run.history if "envelope" in rec]
    assert len(logged) == 4 and all(np.isfinite(rec["envelope"]) and rec["envelope"] > 0 for rec in logged)
