"""The training objective, with the story's broken and fixed forms side by side.

Four of the seven fixes live here: unclamped losses (fix 5), the float32 perceptual loss (fix 6) and the
reweighted total (fix 7); the VQ-loss reduction (fix 4) is computed in the quantizer and arrives as `vq_loss`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .fixes import Fixes
from .spectral import log_mel_loss

CLAMPS = {"recon": (0.0, 5.0), "perceptual": (0.0, 10.0), "vq": (0.0, 10.0)}   # the baseline's bounds
WEIGHTS_BROKEN = {"recon": 1.0, "perceptual": 0.01, "vq": 1.0}
WEIGHTS_FIXED = {"recon": 2.0, "perceptual": 0.1, "vq": 1.0}                  # fix 7


def reconstruction_loss(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """L1 + MSE on the waveform."""
    return F.l1_loss(est, ref) + F.mse_loss(est, ref)


def perceptual_loss(est: torch.Tensor, ref: torch.Tensor, sample_rate: int, fixes: Fixes) -> torch.Tensor:
    """Multi-resolution log-mel L1. Fix 6 decides the precision it is computed and returned in."""
    if fixes.fp32_perceptual:                                     # fix 6: an fp32 island outside autocast
        with torch.autocast(device_type=est.device.type, enabled=False):
            return log_mel_loss(est.float(), ref.float(), sample_rate)
    loss = log_mel_loss(est, ref, sample_rate)                   # baseline: under autocast...
    if torch.is_autocast_enabled(est.device.type):
        loss = loss.to(torch.get_autocast_dtype(est.device.type))  # ...and cast back to its dtype
    return loss


def total_loss(est: torch.Tensor, ref: torch.Tensor, vq_loss: torch.Tensor, sample_rate: int,
               fixes: Fixes) -> dict:
    """Combine reconstruction, perceptual and VQ losses as the fixes say. Returns the total and its parts."""
    parts = {
        "recon": reconstruction_loss(est.float(), ref.float()),
        "perceptual": perceptual_loss(est, ref, sample_rate, fixes),
        "vq": vq_loss,
    }
    used = parts
    if not fixes.unclamped_losses:                                # baseline: clamp each loss (fix 5 removes it)
        used = {k: v.clamp(*CLAMPS[k]) for k, v in parts.items()}
    weights = WEIGHTS_FIXED if fixes.reweighted_losses else WEIGHTS_BROKEN
    total = sum(weights[k] * v.float() for k, v in used.items())
    # report the unclamped values, so a clamp that silently zeroes a gradient shows up in the logs
    return {"total": total, **{k: v.detach().float() for k, v in parts.items()},
            "clamped": [k for k in parts if not fixes.unclamped_losses and float(parts[k].detach()) > CLAMPS[k][1]]}
