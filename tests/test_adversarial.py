"""Adversarial training: the discriminators' documented shapes, the three losses, the balancer's shares with
adversarial terms (measured by autograd), and training with discriminators: the discriminators never leak into
the codec before their warm-up ends, a non-finite step leaves them untouched, resume is bit-identical, and a
fine-tune starts from the given weights."""

import math
from dataclasses import replace

import pytest
import torch

from telucodec.bench import synthetic_speech
from telucodec.coding import checkpoint as ckpt
from telucodec.training.adversarial import discriminator_loss, feature_matching_loss, generator_loss
from telucodec.training.discriminators import Discriminators, MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator
from telucodec.training.loop import fit
from telucodec.training.losses import Balancer, working_terms
from telucodec.training.recipes import recipe


def test_msstft_discriminator_has_the_documented_shapes():
    torch.manual_seed(0)
    d = MultiScaleSTFTDiscriminator(n_ffts=(512, 256), channels=4)
    logits, features = d(torch.randn(3, 1, 4000))
    assert len(logits) == 2 and len(features) == 2
    for lg, ft, n_fft in zip(logits, features, (512, 256)):
        frames, bins = 4000 // (n_fft // 4) + 1, n_fft // 2 + 1
        assert tuple(lg.shape) == (3, 1, frames, math.ceil(bins / 8))
        assert len(ft) == 5 and all(f.shape[:3] == (3, 4, frames) for f in ft)
        assert [f.shape[3] for f in ft] == [
            bins,
            math.ceil(bins / 2),
            math.ceil(bins / 4),
            math.ceil(bins / 8),
            math.ceil(bins / 8),
        ]


def test_multi_period_discriminator_folds_by_period():
    torch.manual_seed(0)
    d = MultiPeriodDiscriminator(periods=(2, 3, 5), channels=4)
    logits, features = d(torch.randn(2, 1, 3001))
    for lg, ft, p in zip(logits, features, (2, 3, 5)):
        rows = math.ceil(3001 / p)
        for _ in range(4):
            rows = (rows - 1) // 3 + 1  # four stride-3 convolutions along time
        assert tuple(lg.shape) == (2, 1, rows, p) and len(ft) == 5 and ft[0].shape[1] == 4
    with pytest.raises(ValueError, match="unknown discriminator"):
        Discriminators(("msstft", "wavenet"))


def test_hinge_and_least_squares_losses_are_zero_only_where_the_papers_say():
    real, fake = [torch.full((2, 1, 5, 3), 1.5)], [torch.full((2, 1, 5, 3), -1.5)]
    assert float(discriminator_loss(real, fake, "hinge")) == 0.0  # both past the margin
    assert float(discriminator_loss(fake, real, "hinge")) == pytest.approx(5.0)
    assert float(discriminator_loss([torch.ones(4)], [torch.zeros(4)], "lsgan")) == 0.0
    assert float(generator_loss([torch.full((4,), 2.0)], "hinge")) == 0.0
    assert float(generator_loss([torch.zeros(4)], "lsgan")) == 1.0
    f = torch.zeros(4, requires_grad=True)  # the codec's gradient raises its output's score
    generator_loss([f], "hinge").backward()
    assert (f.grad < 0).all()
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        generator_loss([f], "wgan")


def test_feature_matching_is_relative_and_zero_for_identical_features():
    r = [[torch.randn(2, 3, 4), 100 * torch.randn(2, 3, 4)]]
    assert float(feature_matching_loss(r, r)) == 0.0
    doubled = [[2 * m for m in r[0]]]
    assert float(feature_matching_loss(r, doubled)) == pytest.approx(1.0, rel=1e-5)  # layers count alike


def test_balancer_gives_the_adversarial_terms_their_share_and_renormalises_without_them():
    torch.manual_seed(0)
    x = torch.from_numpy(synthetic_speech(1.0, seed=4))[None, None].repeat(2, 1, 1)
    y = (0.5 * x + 0.02 * torch.randn_like(x)).requires_grad_()
    d = Discriminators(("msstft", "mpd"), channels=4)
    real_logits, real_features = d(x)
    fake_logits, fake_features = d(y)
    terms = {
        **working_terms(y, x, 16000),
        "adversarial": generator_loss(fake_logits),
        "feature": feature_matching_loss(real_features, fake_features),
    }
    shares = {"waveform": 0.1, "stft": 0.2, "mel": 0.2, "adversarial": 0.2, "feature": 0.3}
    g, norms = Balancer(shares, total_norm=1.0).output_gradient(terms, y)
    raw = {k: torch.autograd.grad(terms[k], y, retain_graph=True)[0] for k in shares}
    unit = {k: raw[k] / raw[k].flatten(1).norm(dim=1).mean() for k in shares}
    assert torch.allclose(g, sum(shares[k] * unit[k] for k in shares), rtol=1e-4, atol=1e-9)
    # before the discriminators start, the reconstruction terms share the whole gradient in their ratio
    recon = {k: terms[k] for k in ("waveform", "stft", "mel")}
    bal = Balancer(shares, total_norm=1.0)
    g0, _ = bal.output_gradient(recon, y)
    assert torch.allclose(g0, sum(shares[k] / 0.5 * unit[k] for k in recon), rtol=1e-4, atol=1e-9)
    assert bal.counts == {"waveform": 1, "stft": 1, "mel": 1, "adversarial": 0, "feature": 0}


def _clips():
    return [synthetic_speech(2.0, seed=s) for s in range(4)], [synthetic_speech(2.0, seed=9)]


def _tiny(**train_changes):
    r = recipe("adversarial", "ci")
    return (
        replace(r.codec, kmeans_buffer=1024),
        replace(r.train, **{"checkpoint_every": 3, "disc_channels": 4, "segment_seconds": 0.5, **train_changes}),
        r.fixes,
    )


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_discriminators_never_reach_the_codec_before_their_warm_up_ends():
    torch.set_num_threads(1)
    ccfg, tcfg, fixes = _tiny(disc_warmup_steps=100)  # D trains, the codec never hears it
    with_d = fit("ci", fixes, _clips(), codec_config=ccfg, train_config=tcfg, steps=4, print_epochs=False, device="cpu")
    without = fit(
        "ci",
        fixes,
        _clips(),
        codec_config=ccfg,
        train_config=replace(tcfg, discriminators=()),
        steps=4,
        print_epochs=False,
        device="cpu",
    )
    assert _same(with_d.model, without.model)
    assert all("discriminator" in h and "adversarial" not in h for h in with_d.history)
    ccfg, tcfg, fixes = _tiny()  # no warm-up: the codec does hear it
    heard = fit("ci", fixes, _clips(), codec_config=ccfg, train_config=tcfg, steps=4, print_epochs=False, device="cpu")
    assert not _same(heard.model, without.model) and "adversarial" in heard.history[-1]


def test_training_with_discriminators_resumes_bit_identically(tmp_path):
    torch.set_num_threads(1)
    ccfg, tcfg, fixes = _tiny(disc_start_step=1, disc_warmup_steps=2)
    kw = dict(codec_config=ccfg, train_config=tcfg, checkpoint_dir=tmp_path, print_epochs=False, device="cpu")
    a = fit("ci", fixes, _clips(), steps=8, experiment_name="a", **kw)
    run = tmp_path / "c"
    fit("ci", fixes, _clips(), steps=8, experiment_name="c", **kw)
    for p in ckpt.list_checkpoints(run)[1:]:  # keep only the step-6 checkpoint
        p.unlink()
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(run)[-1])
    assert "adversary" in state and state["step"] == 6
    c = fit("ci", fixes, _clips(), steps=8, experiment_name="c", resume=True, **kw)
    assert _same(a.model, c.model) and c.step == 8
    # the discriminators themselves resumed exactly too
    da = ckpt.load_checkpoint(ckpt.list_checkpoints(tmp_path / "a")[-1])["adversary"]["model"]
    dc = ckpt.load_checkpoint(ckpt.list_checkpoints(run)[-1])["adversary"]["model"]
    assert all(torch.equal(da[k], dc[k]) for k in da)


def test_a_non_finite_step_leaves_the_discriminators_untouched(tmp_path):
    torch.set_num_threads(1)
    ccfg, tcfg, fixes = _tiny(on_nonfinite="skip", checkpoint_every=1)
    kw = dict(codec_config=ccfg, train_config=tcfg, print_epochs=False, device="cpu")
    r = fit("ci", fixes, _clips(), steps=3, inject_nonfinite_at=2, checkpoint_dir=tmp_path, experiment_name="n", **kw)
    assert r.skipped_steps == 1
    d2 = ckpt.load_checkpoint(tmp_path / "n" / "step_00000002.pt")["adversary"]["model"]
    d3 = ckpt.load_checkpoint(tmp_path / "n" / "step_00000003.pt")["adversary"]["model"]
    assert all(torch.equal(d2[k], d3[k]) for k in d2)
    assert all(torch.isfinite(p).all() for p in r.model.parameters())


def test_a_fine_tune_starts_from_the_given_weights(tmp_path):
    torch.set_num_threads(1)
    from telucodec.coding.inference import export_safetensors, load

    ccfg, tcfg, fixes = _tiny()
    base = fit(
        "ci",
        fixes,
        _clips(),
        codec_config=ccfg,
        train_config=replace(tcfg, discriminators=()),
        steps=3,
        print_epochs=False,
        device="cpu",
    )
    export_safetensors(base.model, tmp_path / "base.safetensors")  # weight norm folded on export
    zero = fit(
        "ci",
        fixes,
        _clips(),
        codec_config=ccfg,
        train_config=replace(tcfg, learning_rate=1e-12),
        steps=1,
        print_epochs=False,
        device="cpu",
        init_from=tmp_path / "base.safetensors",
    )
    # the convolutions start where the source left them (one step at lr 1e-12 later); the codebooks move
    # by their EMA update in the forward pass, which the learning rate does not control
    source = load(tmp_path / "base.safetensors").codec.state_dict()
    tuned = zero.model.fold_weight_norm().state_dict()
    convs = [k for k in source if not k.startswith("quantizer")]
    assert convs and set(tuned) == set(source)
    assert all(torch.allclose(source[k], tuned[k], rtol=1e-5, atol=1e-7) for k in convs)
    fresh = (
        fit(
            "ci",
            fixes,
            _clips(),
            codec_config=ccfg,
            train_config=replace(tcfg, learning_rate=1e-12),
            steps=1,
            print_epochs=False,
            device="cpu",
        )
        .model.fold_weight_norm()
        .state_dict()
    )
    assert not all(torch.allclose(source[k], fresh[k], rtol=1e-5, atol=1e-7) for k in convs)  # could fail
    from telucodec.errors import TeluCodecError

    with pytest.raises(TeluCodecError, match="another architecture"):
        fit(
            "ci",
            fixes,
            _clips(),
            codec_config=replace(ccfg, latent_dim=16),
            train_config=tcfg,
            steps=1,
            print_epochs=False,
            device="cpu",
            init_from=tmp_path / "base.safetensors",
        )
    # a codec with envelope codebooks (the shipped model) starts a fine-tune from its codec's weights
    from telucodec.codec.model import Codec

    plain = load(tmp_path / "base.safetensors").codec
    enveloped = Codec(replace(plain.config, envelope_split=((6, 2), (12, 3))), plain.fixes)
    assert enveloped.load_state_dict(plain.state_dict(), strict=False).missing_keys == ["envelope.codebooks"]
    export_safetensors(enveloped, tmp_path / "enveloped.safetensors")
    again = fit(
        "ci",
        fixes,
        _clips(),
        codec_config=ccfg,
        train_config=replace(tcfg, learning_rate=1e-12),
        steps=1,
        print_epochs=False,
        device="cpu",
        init_from=tmp_path / "enveloped.safetensors",
    )
    tuned = again.model.fold_weight_norm().state_dict()
    assert all(torch.allclose(source[k], tuned[k], rtol=1e-5, atol=1e-7) for k in convs)
