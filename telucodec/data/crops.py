"""Training segments: :class:`CropDataset` cuts loaded clips into fixed-length crops for a ``DataLoader``.

Training crops are random but deterministic per ``(seed, epoch, index)``, so the data are the same on every run and
after a resume; validation takes fixed consecutive segments from the start of each clip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from telucodec.errors import DataError

__all__ = ["CropDataset"]


def _mix(*values: int) -> int:
    h = hashlib.blake2b(repr(tuple(int(v) for v in values)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF_FFFF


class CropDataset(torch.utils.data.Dataset):
    """Fixed-length segments of loaded clips, as float32 tensors shaped (1, T).

    ``train=True``: item ``i`` is a random crop of clip ``i % len(clips)``; the crop start
    comes from a ``torch.Generator`` seeded with a hash of (seed, epoch, i), so the data
    are the same on every run and after a resume. Call :meth:`set_epoch` each epoch (with
    DataLoader workers, before creating the iterator; not with ``persistent_workers``).
    ``items_per_epoch`` defaults to the number of clips.

    ``train=False``: fixed segments for validation: up to ``max_segments_per_clip``
    consecutive, non-overlapping segments from the start of each clip. Clips shorter than
    T are zero-padded at the end (as are short training clips).
    """

    def __init__(
        self,
        clips: Sequence[np.ndarray] | Sequence[tuple[Any, np.ndarray]],
        segment_samples: int,
        *,
        seed: int = 0,
        train: bool = True,
        items_per_epoch: int | None = None,
        max_segments_per_clip: int = 4,
    ):
        wavs = [c[1] if isinstance(c, tuple) else c for c in clips]
        if not wavs:
            raise DataError("CropDataset needs at least one clip")
        if segment_samples <= 0:
            raise ValueError(f"segment_samples must be positive, got {segment_samples}")
        self.clips = [np.ascontiguousarray(w, dtype=np.float32).reshape(-1) for w in wavs]
        if clips and isinstance(clips[0], tuple):
            self.paths = [Path(c[0]) for c in clips]
        else:
            self.paths = list(getattr(clips, "paths", []))
        self.segment_samples = int(segment_samples)
        self.seed = int(seed)
        self.train = bool(train)
        self.epoch = 0
        self.items_per_epoch = int(items_per_epoch) if items_per_epoch else len(self.clips)
        T = self.segment_samples
        self._fixed: list[tuple[int, int]] = []
        for ci, wav in enumerate(self.clips):
            n = max(1, min(int(max_segments_per_clip), len(wav) // T))
            self._fixed.extend((ci, k * T) for k in range(n))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.items_per_epoch if self.train else len(self._fixed)

    def _segment(self, clip: int, start: int) -> torch.Tensor:
        wav = self.clips[clip]
        out = np.zeros(self.segment_samples, dtype=np.float32)
        piece = wav[start : start + self.segment_samples]
        out[: piece.size] = piece
        return torch.from_numpy(out).unsqueeze(0)

    def crop(self, index: int, epoch: int | None = None) -> torch.Tensor:
        """The training crop for ``index`` in ``epoch`` (default: the current epoch)."""
        clip = index % len(self.clips)
        span = len(self.clips[clip]) - self.segment_samples
        start = 0
        if span > 0:
            g = torch.Generator().manual_seed(_mix(self.seed, self.epoch if epoch is None else epoch, index))
            start = int(torch.randint(0, span + 1, (1,), generator=g))
        return self._segment(clip, start)

    def __getitem__(self, index: int) -> torch.Tensor:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if self.train:
            return self.crop(index)
        return self._segment(*self._fixed[index])

    def eval_segments(self) -> torch.Tensor:
        """All fixed validation segments stacked: (N, 1, T)."""
        return torch.stack([self._segment(c, s) for c, s in self._fixed])
