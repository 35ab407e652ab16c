"""Envelope codebooks (telucodec.codec.envelope; CodecConfig.envelope_split)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import telucodec
from telucodec import Fixes
from telucodec.codec.envelope import EnvelopeCoder, stages_for
from telucodec.codec.model import Codec
from telucodec.coding.inference import with_envelope
from telucodec.config import PRESETS

SR = 16000


def _speechlike(seconds, seed, f0=140.0):
    """A harmonic tone whose upper harmonics come and go (a band-level envelope to code), plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    high = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * t)
    x = sum(
        (1.0 if k * f0 < 1000 else high) / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 50) if k * f0 < 7500
    )
    return (0.05 * x + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def test_stages_for_picks_the_largest_split_not_above_n_q_and_bad_splits_fail():
    split = ((6, 2), (12, 3))
    assert [stages_for(split, n) for n in (1, 3, 5, 6, 11, 12)] == [0, 0, 0, 2, 2, 3]
    cfg = replace(PRESETS["ci"].codec, envelope_split=[[12, 3], [6, 2]])  # JSON's lists, any order
    assert cfg.envelope_split == ((6, 2), (12, 3))
    with pytest.raises(ValueError, match="envelope_split"):
        replace(PRESETS["ci"].codec, envelope_split=((6, 6),))


def test_fitted_codebooks_shrink_the_residual_at_every_stage_and_the_decoded_envelope_is_imposed():
    coder = EnvelopeCoder(n_stages=3, codebook_size=16)
    assert coder.first == 11 and coder.dims == 21
    clips = [_speechlike(2.0, seed) for seed in range(4)]
    report = coder.fit_codebooks(clips)
    r = report["rms_residual_nats"]
    assert report["vectors"] == 4 * 3 * 100 and r[0] > r[1] > r[2]
    x = torch.from_numpy(_speechlike(1.0, 9))[None, None]
    target = coder.envelope(x, 50)
    codes = coder.encode(target, 3)
    assert codes.shape == (1, 3, 50) and int(codes.max()) < 16
    decoded = coder.decode(codes)
    muffled = torch.from_numpy(np.convolve(x[0, 0].numpy(), np.ones(8) / 8, mode="same"))[None, None]  # high band lost
    before = (coder.envelope(muffled, 50) - target).abs().mean()
    after = (coder.envelope(coder.impose(muffled, decoded), 50) - target).abs().mean()
    assert float(after) < 0.5 * float(before)
    low = lambda w: float(torch.fft.rfft(w[0, 0])[:850].abs().square().sum())  # energy under 850 Hz (1 s: bin = Hz)
    assert abs(low(coder.impose(muffled, decoded)) / low(muffled) - 1) < 0.02  # the uncoded band keeps its level
    with pytest.raises(ValueError, match="3 envelope codebooks, not 4"):
        coder.encode(target, 4)


def test_a_codec_with_envelope_codebooks_splits_its_codes_decodes_them_as_its_forward_pass_and_exports(tmp_path):
    from telucodec.coding.inference import export_safetensors, load

    torch.manual_seed(0)
    base = telucodec.CodecModel(Codec(PRESETS["ci"].codec, Fixes.all()).eval(), source="test")
    with pytest.raises(ValueError, match="need"):  # too few frames for 1024-code codebooks
        with_envelope(base, [_speechlike(1.0, 0)])
    clips = [_speechlike(30.0, seed) for seed in range(2)]
    model, report = with_envelope(base, clips)
    codec = model.codec
    assert report["split"] == [[3, 1], [6, 2], [12, 3]] and [codec.envelope_stages(n) for n in (3, 6, 12)] == [1, 2, 3]
    x = _speechlike(1.0, 7)
    codes = model.encode(x, SR, 6.0)
    assert codes.shape[0] == 12
    assert np.array_equal(codes[:9], base.encode(x, SR, 4.5)[:9])  # the codec's own 9 stages, unchanged
    y = model.decode(codes, len(x))
    with torch.no_grad():
        forward = codec(torch.from_numpy(x)[None, None], n_q=12)["wav"][0, 0].numpy()
    assert np.allclose(y, forward, atol=1e-5) and not np.allclose(y, base.decode(codes[:9], len(x)), atol=1e-3)
    low = model.encode(x, SR, 1.5)  # 2 codec + 1 envelope codebook
    assert low.shape[0] == 3 and np.array_equal(low[:2], base.encode(x, SR, 1.5)[:2])
    two_rates, _ = with_envelope(base, clips, split=((6, 2), (12, 3)))  # a split without 1.5 kbps leaves it alone
    assert np.allclose(
        two_rates.decode(two_rates.encode(x, SR, 1.5), len(x)), base.decode(base.encode(x, SR, 1.5), len(x)), atol=1e-6
    )
    assert torch.equal(two_rates.codec.envelope.codebooks[:2], codec.envelope.codebooks[:2])  # stage by stage: shared
    export_safetensors(model, tmp_path / "env.safetensors", {})
    again = load(tmp_path / "env.safetensors")
    assert again.config.envelope_split == ((3, 1), (6, 2), (12, 3))
    assert np.allclose(again.decode(again.encode(x, SR, 6.0), len(x)), y, atol=1e-6)
    with pytest.raises(ValueError, match="already carries"):
        with_envelope(model, clips)


def test_without_envelope_gives_back_the_codec_as_trained():
    from telucodec.coding.inference import without_envelope

    torch.manual_seed(0)
    base = telucodec.CodecModel(Codec(PRESETS["ci"].codec, Fixes.all()).eval(), source="test")
    assert without_envelope(base) is base
    model, _ = with_envelope(base, [_speechlike(30.0, seed) for seed in range(2)])
    plain = without_envelope(model)
    assert plain.config.envelope_split == () and model.config.envelope_split  # `model` itself is unchanged
    assert not any(k.startswith("envelope.") for k in plain.codec.state_dict())
    x = _speechlike(1.0, 5)
    codes = plain.encode(x, SR, 6.0)
    assert np.array_equal(codes, base.encode(x, SR, 6.0))  # all 12 stages are the codec's
    assert not np.array_equal(codes, model.encode(x, SR, 6.0))
    assert np.allclose(plain.decode(codes, len(x)), base.decode(codes, len(x)), atol=1e-6)


def test_fit_envelope_command_adds_codebooks_keeps_the_training_record_and_refuses_bad_input(tmp_path, capsys):
    import soundfile as sf

    from telucodec.cli.commands import main
    from telucodec.coding.checkpoint import load_weights_safetensors
    from telucodec.coding.inference import export_safetensors, load

    torch.manual_seed(0)
    base = telucodec.CodecModel(Codec(PRESETS["ci"].codec, Fixes.all()).eval(), source="test")
    export_safetensors(base, tmp_path / "codec.safetensors", {"recipe": "working", "steps": "7"})
    speech = tmp_path / "speech"
    speech.mkdir()
    for seed in range(4):  # 3 files train (6000 frames x 3 loudness levels), 1 is held out
        sf.write(speech / f"clip{seed}.wav", _speechlike(40.0, seed, f0=120.0 + 10 * seed), SR)
    out = tmp_path / "env.safetensors"
    args = [
        "fit-envelope",
        str(out),
        "--checkpoint",
        str(tmp_path / "codec.safetensors"),
        "--data_dir",
        str(speech),
        "--no_corpus",
    ]
    assert main(args) == 0
    assert "fitted on 3 clips (18000 envelope vectors" in capsys.readouterr().out
    model = load(out)
    assert model.config.envelope_split == ((3, 1), (6, 2), (12, 3))
    _, meta = load_weights_safetensors(out)
    assert meta["recipe"] == "working" and meta["steps"] == "7" and '"vectors": 18000' in meta["envelope_fit"]
    assert main(args[:1] + [str(tmp_path / "again.safetensors"), "--checkpoint", str(out)] + args[4:]) == 0
    capsys.readouterr()
    again = load(tmp_path / "again.safetensors")  # refitting replaces the codebooks: the same file
    for k, v in model.codec.state_dict().items():
        assert torch.equal(v, again.codec.state_dict()[k]), k
    assert main(["fit-envelope", str(out), "--checkpoint", str(tmp_path / "codec.safetensors"), "--no_corpus"]) == 2
    assert "nothing to fit on" in capsys.readouterr().err
    for seed in range(4):  # 3 x 5 s to train on: 2250 vectors < 4 x 1024
        sf.write(speech / f"clip{seed}.wav", _speechlike(5.0, seed), SR)
    assert main(args) == 2
    assert "cannot fit 1024-code codebooks" in capsys.readouterr().err.splitlines()[-1]


def test_a_tlc_file_names_its_envelope_codebooks_and_a_decoder_that_reads_them_otherwise_refuses_it(tmp_path, capsys):
    import soundfile as sf

    from telucodec.cli.commands import main
    from telucodec.coding.inference import export_safetensors, without_envelope
    from telucodec.coding.tlcfile import read_tlc

    torch.manual_seed(0)
    plain = Codec(PRESETS["ci"].codec, Fixes.all()).eval()
    enveloped = Codec(replace(plain.config, envelope_split=((6, 2), (12, 3))), plain.fixes)
    enveloped.load_state_dict(plain.state_dict(), strict=False)  # random envelope codebooks will do
    export_safetensors(enveloped, tmp_path / "env.safetensors")
    export_safetensors(without_envelope(telucodec.CodecModel(enveloped)), tmp_path / "plain.safetensors")
    sf.write(tmp_path / "x.wav", _speechlike(1.0, 3), SR)
    for kbps, k in (("6", 3), ("3", 2), ("1.5", 0)):
        out = tmp_path / f"x{kbps}.tlc"
        assert (
            main(
                [
                    "encode",
                    str(tmp_path / "x.wav"),
                    str(out),
                    "--kbps",
                    kbps,
                    "--checkpoint",
                    str(tmp_path / "env.safetensors"),
                ]
            )
            == 0
        )
        assert read_tlc(out).envelope_stages == k
    capsys.readouterr()
    assert (
        main(
            [
                "decode",
                str(tmp_path / "x6.tlc"),
                str(tmp_path / "y.wav"),
                "--checkpoint",
                str(tmp_path / "plain.safetensors"),
            ]
        )
        == 2
    )
    assert "carries 3 envelope codebooks of its 12" in capsys.readouterr().err
    for name in ("x6", "x1.5"):  # the encoder's own model, and a rate without envelope codes
        assert (
            main(
                [
                    "decode",
                    str(tmp_path / f"{name}.tlc"),
                    str(tmp_path / "y.wav"),
                    "--checkpoint",
                    str(tmp_path / f"{'env' if name == 'x6' else 'plain'}.safetensors"),
                ]
            )
            == 0
        )
