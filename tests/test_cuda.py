"""Tests that need a CUDA GPU (run by scripts/gpu_run.sh on the GPU machine; skipped elsewhere)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from telucodec.codec.model import Codec
from telucodec.config import PRESETS
from telucodec.fixes import Fixes
from telucodec.training.loop import fit
from telucodec.training.losses import perceptual_loss, total_loss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _clips():
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    clip = lambda f: (0.2 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    return [clip(150), clip(220), clip(330)], [clip(180)]


def test_model_and_losses_live_on_the_gpu():
    m = Codec(PRESETS["ci"].codec, Fixes.all()).cuda()
    x = torch.randn(2, 1, 8000, device="cuda") * 0.1
    out = m(x)
    assert out["wav"].device.type == "cuda" and out["codes"].device.type == "cuda"
    loss = total_loss(out["wav"], x, out["vq_loss"], 16000, Fixes.all())["total"]
    loss.backward()
    assert all(p.grad is None or p.grad.device.type == "cuda" for p in m.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fp32_perceptual_island_under_cuda_autocast(dtype):
    t = torch.arange(16000, device="cuda") / 16000
    ref = (0.9 * torch.sin(2 * torch.pi * 440 * t))[None, None]
    est = 0.5 * ref
    exact = perceptual_loss(est, ref, 16000, Fixes.all())
    with torch.autocast("cuda", dtype=dtype):
        fixed = perceptual_loss(est, ref, 16000, Fixes.all())
        broken = perceptual_loss(est.to(dtype), ref.to(dtype), 16000, Fixes.none())
    assert fixed.dtype == torch.float32 and torch.allclose(fixed, exact, rtol=1e-4)
    assert broken.dtype == dtype


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_short_training_run_with_autocast(amp):
    tc = replace(PRESETS["ci"].train, amp=amp)
    r = fit("ci", Fixes.all(), _clips(), train_config=tc, steps=30, device="cuda", log_every=5, print_epochs=False)
    assert all(np.isfinite(h["loss"]) for h in r.history)
    assert next(r.model.parameters()).device.type == "cuda"
    assert r.history[-1]["recon"] < r.history[0]["recon"]


def test_grad_scaler_is_used_for_fp16_only(tmp_path):
    tc = replace(PRESETS["ci"].train, amp="fp16", checkpoint_every=5)
    fit(
        "ci",
        Fixes.all(),
        _clips(),
        train_config=tc,
        steps=5,
        device="cuda",
        checkpoint_dir=tmp_path,
        experiment_name="s",
        print_epochs=False,
    )
    from telucodec.coding.checkpoint import load_latest_good

    _, state = load_latest_good(tmp_path / "s")
    assert state["scaler"] and float(state["scaler"]["scale"]) > 0
