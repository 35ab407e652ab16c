"""The optimiser side of a training run: AdamW (or Adam), the learning-rate schedule, the mixed-precision dtype and
gradient norms."""

from __future__ import annotations

import math

import torch

from telucodec.config import TrainConfig


def learning_rate(step: int, cfg: TrainConfig, total_steps: int | None = None) -> float:
    """Linear warm-up to cfg.learning_rate over warmup_steps, then constant (the story) or, with
    lr_schedule="cosine", a half cosine from the peak down to 10 % of it at `total_steps`."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine" and total_steps:
        done = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))
    return cfg.learning_rate


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay)


def grad_norm(params) -> torch.Tensor:
    """The norm of all the gradients of `params` together, a 0-d tensor on their device (0 when none has one)."""
    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.stack(grads).norm() if grads else torch.zeros(())


def amp_dtype(amp: str):
    """The autocast dtype of TrainConfig.amp ("bf16", "fp16"), or None for "off"."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]
