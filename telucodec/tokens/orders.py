"""Token orders: how a ``(n_q, frames)`` array of codes becomes the one sequence a language model reads.

* ``flat``: frame by frame, and within a frame stage by stage (``c[0,0], c[1,0], ..., c[n_q-1,0], c[0,1], ...``).
  Every code is predicted from all the codes before it, but the sequence is ``n_q`` times longer than the audio's
  frame count (600 tokens a second for TeluCodec at 6 kbps).
* ``delay`` (MusicGen's delay pattern, Copet et al. 2023): stage ``k`` is shifted ``k`` steps later, so step ``t``
  holds stage ``k``'s code of frame ``t - k``. A step's ``n_q`` codes are predicted together from the steps before
  it; the sequence is ``frames + n_q - 1`` steps long. Stage ``k`` of frame ``f`` still sees stages ``< k`` of the
  same frame (they sit in earlier steps) but not the stages above it.

Cells of the delayed grid outside the clip hold ``pad`` (the codebook size K: one index past the last code).
"""

from __future__ import annotations

import torch

__all__ = ["ORDERS", "delay", "undelay", "flatten", "unflatten", "sequence_length"]

ORDERS = ("flat", "delay")


def delay(codes: torch.Tensor, pad: int) -> torch.Tensor:
    """``(..., n_q, F)`` codes -> ``(..., n_q, F + n_q - 1)`` grid with stage k shifted k steps later."""
    n_q, f = codes.shape[-2:]
    grid = codes.new_full((*codes.shape[:-1], f + n_q - 1), pad)
    for k in range(n_q):
        grid[..., k, k : k + f] = codes[..., k, :]
    return grid


def undelay(grid: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`delay`: ``(..., n_q, S)`` -> ``(..., n_q, S - n_q + 1)``."""
    n_q, s = grid.shape[-2:]
    f = s - n_q + 1
    if f < 0:
        raise ValueError(f"a delayed grid of {n_q} stages needs at least {n_q - 1} steps, got {s}")
    return torch.stack([grid[..., k, k : k + f] for k in range(n_q)], dim=-2)


def flatten(codes: torch.Tensor) -> torch.Tensor:
    """``(..., n_q, F)`` -> ``(..., F * n_q)``, frame-major (a frame's stages are neighbours)."""
    return codes.transpose(-1, -2).reshape(*codes.shape[:-2], -1)


def unflatten(seq: torch.Tensor, n_q: int) -> torch.Tensor:
    """The inverse of :func:`flatten`."""
    if seq.shape[-1] % n_q:
        raise ValueError(f"a flat sequence of {seq.shape[-1]} tokens is not a whole number of {n_q}-stage frames")
    return seq.reshape(*seq.shape[:-1], -1, n_q).transpose(-1, -2)


def sequence_length(frames: int, n_q: int, order: str) -> int:
    """Positions a language model reads for `frames` frames of `n_q` stages in token order `order`."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return frames * n_q if order == "flat" else frames + n_q - 1
