"""The loss switches (fixes 5, 6, 7) behave as the book says."""

import pytest
import torch

from telucodec.fixes import Fixes
from telucodec.training.losses import WEIGHTS_BROKEN, WEIGHTS_FIXED, perceptual_loss, total_loss

SR = 16000


def _pair(seed=0, n=8000):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    ref = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(n, generator=g))[None, None]
    est = (0.5 * ref + 0.02 * torch.randn(1, 1, n, generator=g)).requires_grad_(True)
    return est, ref


def test_clamped_loss_has_zero_gradient_past_its_bound():
    est, ref = _pair()
    big_vq = torch.tensor(25.0, requires_grad=True)  # above the VQ bound of 10
    out = total_loss(est, ref, big_vq, SR, Fixes.none())
    out["total"].backward()
    assert big_vq.grad is not None and float(big_vq.grad) == 0.0
    assert "vq" in out["clamped"]
    big_vq.grad = None
    total_loss(est, ref, big_vq, SR, Fixes.none(unclamped_losses=True))["total"].backward()
    assert float(big_vq.grad) == pytest.approx(WEIGHTS_BROKEN["vq"])


def test_each_story_loss_sends_no_gradient_past_its_bound_and_full_gradient_inside_it():
    """The baseline clamps recon at 5, perceptual at 10 and VQ at 10: measured by autograd on losses pushed just
    inside and far outside each bound."""
    est, ref = _pair()
    vq_in, vq_out = torch.tensor(9.9, requires_grad=True), torch.tensor(10.1, requires_grad=True)
    for vq, grad in ((vq_in, 1.0), (vq_out, 0.0)):
        total_loss(est.detach(), ref, vq, SR, Fixes.none())["total"].backward()
        assert float(vq.grad) == grad
    far = (ref + 3.0).requires_grad_(True)  # L1 + MSE = 3 + 9 = 12 > 5
    out = total_loss(far, ref, torch.tensor(0.0), SR, Fixes.none())
    assert "recon" in out["clamped"] and float(out["recon"]) > 5
    loud = (ref * 1e4).requires_grad_(True)  # log-mel distance ~ ln(1e8) = 18 > 10
    out = total_loss(loud, ref, torch.tensor(0.0), SR, Fixes.none())
    assert {"recon", "perceptual"} <= set(out["clamped"]) and float(out["perceptual"]) > 10
    g_clamped = torch.autograd.grad(out["total"], loud)[0]
    g_free = torch.autograd.grad(
        total_loss(loud, ref, torch.tensor(0.0), SR, Fixes.none(unclamped_losses=True))["total"], loud
    )[0]
    assert float(g_clamped.abs().max()) == 0.0 and float(g_free.abs().max()) > 0.0


def test_reweighting_changes_only_the_weights():
    est, ref = _pair()
    vq = torch.tensor(0.3)
    a = total_loss(est, ref, vq, SR, Fixes.none(unclamped_losses=True))
    b = total_loss(est, ref, vq, SR, Fixes.none(unclamped_losses=True, reweighted_losses=True))
    for k in ("recon", "perceptual", "vq"):
        assert torch.equal(a[k], b[k])
    expect = lambda w, d: sum(w[k] * float(d[k]) for k in ("recon", "perceptual", "vq"))
    assert float(a["total"].detach()) == pytest.approx(expect(WEIGHTS_BROKEN, a), rel=1e-6)
    assert float(b["total"].detach()) == pytest.approx(expect(WEIGHTS_FIXED, b), rel=1e-6)


def test_perceptual_loss_precision_under_autocast():
    """Baseline: computed under autocast and cast back to bf16. Fix 6: an fp32 island with an fp32 result."""
    est, ref = _pair()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        broken = perceptual_loss(est, ref, SR, Fixes.none())
        fixed = perceptual_loss(est, ref, SR, Fixes.none(fp32_perceptual=True))
    exact = perceptual_loss(est, ref, SR, Fixes.none())  # no autocast: the fp32 reference
    assert broken.dtype == torch.bfloat16 and fixed.dtype == torch.float32
    assert float(fixed.detach()) == pytest.approx(float(exact.detach()), rel=1e-5)
    assert abs(float(broken.detach()) - float(exact.detach())) > abs(float(fixed.detach()) - float(exact.detach()))


def test_perceptual_loss_is_zero_for_identical_signals_and_level_sensitive():
    _, ref = _pair()
    assert float(perceptual_loss(ref, ref, SR, Fixes.all())) == 0.0
    quiet = perceptual_loss(0.1 * ref, ref, SR, Fixes.all())
    close = perceptual_loss(0.9 * ref, ref, SR, Fixes.all())
    assert float(quiet) > 5 * float(close)


def test_fp16_power_spectrogram_overflows_where_fp32_does_not():
    """A full-scale 1 kHz tone through a 2048-point Hann window peaks near (N/4)^2 = 2.6e5 in power:
    finite in float32, inf in float16 (max 65504) -- before any log or mel projection runs."""
    t = torch.arange(16000) / SR
    tone = torch.sin(2 * torch.pi * 1000 * t)
    power = torch.stft(tone, 2048, 512, window=torch.hann_window(2048), return_complex=True).abs().pow(2)
    assert torch.isfinite(power).all() and float(power.max()) > 65504
    assert not torch.isfinite(power.half()).all()
