"""A training run's data: its clips (as given, or loaded and loudness-normalised), the fixed validation crops, the
crop length, the step counts, and the batch of every step (telucodec.training.batches)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from telucodec.config import CodecConfig, TrainConfig
from telucodec.errors import TeluCodecError
from telucodec.training.batches import crop_batch, eval_crops, steps_per_epoch


@dataclass
class RunData:
    tcfg: TrainConfig
    train_clips: list
    val: list  # the validation crops of the per-epoch diagnostics
    segment: int  # samples per training crop
    per_epoch: int  # steps per epoch
    total_steps: int

    @classmethod
    def prepare(cls, clips, data_dir, ccfg: CodecConfig, tcfg: TrainConfig, world: int) -> RunData:
        """The data of a run over `world` processes: `clips` = (train, val) or None (load `data_dir`)."""
        train_clips, val_clips = training_clips(clips, data_dir, ccfg, tcfg)
        segment = int(round(tcfg.segment_seconds * ccfg.sample_rate))
        if tcfg.batch_size % world:
            raise TeluCodecError(f"--batch_size {tcfg.batch_size} must be divisible by the {world} processes")
        per_epoch = steps_per_epoch(train_clips, tcfg.batch_size, segment)
        total_steps = tcfg.steps if tcfg.steps is not None else tcfg.num_epochs * per_epoch
        val = eval_crops(val_clips, int(ccfg.sample_rate * 2.0), tcfg.eval_clips)
        return cls(tcfg, train_clips, val, segment, per_epoch, total_steps)

    def batch(self, step: int, rank: int, world: int) -> torch.Tensor:
        """This rank's share of the batch of `step` (the same whenever it is asked for: resume needs no state)."""
        tcfg = self.tcfg
        return crop_batch(
            self.train_clips,
            step,
            tcfg.batch_size,
            self.segment,
            tcfg.seed,
            rank,
            world,
            gain_jitter_db=tcfg.gain_jitter_db,
        )

    def kmeans_batches(self, ccfg: CodecConfig, device) -> list:
        """The batches the k-means codebook initialisation sees: at least ccfg.kmeans_buffer frames, drawn at steps
        no training step uses."""
        tcfg = self.tcfg
        frames = max(1, self.segment // ccfg.hop_length) * tcfg.batch_size
        return [
            crop_batch(self.train_clips, 2**40 + i, tcfg.batch_size, self.segment, tcfg.seed).to(device)
            for i in range(-(-ccfg.kmeans_buffer // frames))
        ]


def training_clips(clips, data_dir, ccfg: CodecConfig, tcfg: TrainConfig):
    """(train, val) clips: as given, or loaded from data_dir / the embedded corpus; training clips loudness-
    normalised when the recipe asks for it (validation clips are scored as they are)."""
    if clips is None:
        from telucodec.data.folders import load_dataset, spec_for

        clips = (
            load_dataset(data_dir, spec_for(ccfg, tcfg), "train"),
            load_dataset(data_dir, spec_for(ccfg, tcfg), "val"),
        )
    train_clips, val_clips = clips
    if tcfg.loudness_lufs is not None:
        from telucodec.data.audio_io import normalise_loudness

        train_clips = [normalise_loudness(c, ccfg.sample_rate, tcfg.loudness_lufs) for c in train_clips]
    return train_clips, val_clips
