"""Deterministic random crops: the batch for step s depends only on (seed, s), so training resumes exactly
without saving any data-loader state, and every rank of a multi-GPU run agrees on the global batch."""

from __future__ import annotations

import numpy as np
import torch


def crop_batch(
    clips: list,
    step: int,
    batch_size: int,
    segment: int,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    gain_jitter_db: float = 0.0,
) -> torch.Tensor:
    """The global batch for `step` is batch_size crops of `segment` samples, clips drawn in proportion to their
    length; this rank gets every world_size-th of them. Returns float32 (batch_size // world_size, 1, segment).
    With gain_jitter_db > 0 each crop is scaled by a random gain, uniform in +-gain_jitter_db dB (peaks kept
    below full scale), drawn after the crops so that the crops themselves do not change."""
    rng = np.random.default_rng([seed, step])
    lengths = np.array([len(c) for c in clips], dtype=np.float64)
    which = rng.choice(len(clips), size=batch_size, p=lengths / lengths.sum())
    out = np.zeros((batch_size, 1, segment), dtype=np.float32)
    for row, i in enumerate(which):
        clip = clips[i]
        start = int(rng.integers(0, max(1, len(clip) - segment + 1)))
        piece = clip[start : start + segment]
        out[row, 0, : len(piece)] = piece
    if gain_jitter_db > 0:
        gains = 10 ** (rng.uniform(-gain_jitter_db, gain_jitter_db, size=batch_size) / 20)
        peaks = np.abs(out).max(axis=(1, 2)) * gains
        gains = np.where(peaks > 0.99, gains * 0.99 / np.maximum(peaks, 1e-9), gains)
        out *= gains[:, None, None].astype(np.float32)
    return torch.from_numpy(out[rank::world_size].copy())


def eval_crops(clips: list, segment: int, max_clips: int) -> list:
    """Fixed validation excerpts for the training diagnostics: crop policy "middle" of telucodec.evaluation.scoring (the
    middle `segment` samples of each of up to max_clips clips, the whole clip if shorter)."""
    from telucodec.evaluation.scoring import crop_clip

    return [crop_clip(clip, 1, "middle", segment) for clip in clips[:max_clips]]


def steps_per_epoch(clips: list, batch_size: int, segment: int) -> int:
    """One epoch = as many crops as fit in the training audio once."""
    total = sum(len(c) for c in clips)
    return max(1, int(round(total / (batch_size * segment))))
