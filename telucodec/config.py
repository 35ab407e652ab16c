"""Model and training configurations, and the presets (ci, small, cpu: the shipped model, full)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields


class _Dict:
    """One dict conversion for both configurations: tuples become lists (JSON), unknown keys are ignored on the
    way back (a checkpoint from another version still loads)."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class CodecConfig(_Dict):
    """Architecture of the codec. Hop length = product of strides; frame rate = sample_rate / hop."""

    sample_rate: int = 16000
    channels: int = 32  # channels after the first conv; doubled at each downsampling
    strides: tuple = (2, 4, 5, 8)  # hop 320 samples -> 50 frames/s at 16 kHz
    dilations: tuple = (1, 3, 9)  # one residual unit per dilation, in each block
    latent_dim: int = 128  # dimension of the encoder output and of each code vector
    n_q: int = 12  # codebooks: 12 x 10 bits x 50 frames/s = 6 kbps
    codebook_size: int = 1024
    commitment_weight: float = 0.25  # beta
    ema_decay: float = 0.99
    kmeans_init: bool = False  # initialise codebooks by k-means on the first batch
    dead_code_threshold: float = 0.5  # EMA usage (assignments per batch) below which a code is re-seeded
    quantizer_dropout: float = 0.5  # probability of training a step with fewer codebooks
    n_q_choices: tuple = (3, 6, 12)  # ...drawn from these counts: 1.5, 3 and 6 kbps
    # ---- ingredients of the working recipe (telucodec.training.recipes); the defaults are the story's codec ----
    weight_norm: bool = False  # weight normalisation on every convolution (SoundStream, EnCodec, DAC)
    kmeans_buffer: int = 0  # > 0: k-means codebooks from this many latent vectors before step 0
    dead_code_relative: float = 0.0  # > 0: re-seed codes used less than this fraction of the mean usage
    # ---- a decoder head to measure (telucodec.codec.model.Decoder), not in any recipe ----
    istft_blocks: int = 0  # 0: the decoder ends in a conv to the waveform (the story's). k > 0: it
    # keeps its first k upsampling blocks, then predicts a log magnitude and a
    # phase per STFT bin and frame, and an inverse STFT makes the waveform
    head: str = "conv"  # "conv": transposed convolutions to the waveform (the story's decoder);
    # "vocos": ConvNeXt blocks at the frame rate and an inverse STFT
    # (telucodec.codec.backbone): capacity where it is cheap
    head_dim: int = 256  # width of the vocos head's blocks
    head_layers: int = 8  # ConvNeXt blocks in the vocos head
    head_upsample: int = 2  # STFT frames per codec frame (STFT hop = hop_length / this, window 4x)
    encoder_layers: int = 0  # > 0: the encoder ends in this many ConvNeXt blocks at the frame rate
    encoder_dim: int = 256  # ...of this width
    postfilter_bands: int = 0  # > 0: the envelope post-filter (telucodec.codec.postfilter) re-shapes the
    # decoder's output to an envelope in this many mel bands predicted from
    # the codes, trained by its own loss
    envelope_split: tuple = ()  # ((n_q, e), ...): at n_q codebooks, e of them carry the spectral
    # envelope above 1 kHz (telucodec.codec.envelope; fitted after training)

    def __post_init__(self):
        if self.codebook_size & (self.codebook_size - 1) or self.codebook_size < 2:
            raise ValueError("codebook_size must be a power of two >= 2")
        if not 1 <= self.n_q <= 32:
            raise ValueError("n_q must be in 1..32")
        split = tuple(sorted(tuple(int(a) for a in pair) for pair in self.envelope_split))
        object.__setattr__(self, "envelope_split", split)  # JSON gives lists back: one form
        if any(len(pair) != 2 or not 0 <= pair[1] < pair[0] <= self.n_q for pair in split):
            raise ValueError("envelope_split must be (n_q, e) pairs with 0 <= e < n_q <= the codec's n_q")
        if self.head not in ("conv", "vocos"):
            raise ValueError(f"head must be 'conv' or 'vocos', not {self.head!r}")
        if self.head == "vocos" and self.istft_blocks:
            raise ValueError("istft_blocks belongs to the conv head; the vocos head has its own inverse STFT")
        if self.postfilter_bands < 0:
            raise ValueError("postfilter_bands must be >= 0 (0: no envelope post-filter)")
        if not 0 <= self.istft_blocks < len(self.strides):
            raise ValueError(
                f"istft_blocks must be in 0..{len(self.strides) - 1} (it keeps that many of the "
                f"decoder's {len(self.strides)} upsampling blocks)"
            )

    @property
    def istft_hop(self) -> int:
        """The inverse STFT's hop (samples) with `istft_blocks` > 0: the hop length over the kept blocks' strides."""
        return self.hop_length // math.prod(tuple(reversed(self.strides))[: self.istft_blocks])

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def bits_per_code(self) -> int:
        return int(math.log2(self.codebook_size))

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second with n_q codebooks: frames/s x n_q x log2(codebook size)."""
        return self.frame_rate * (n_q or self.n_q) * self.bits_per_code

    def n_q_for_kbps(self, kbps: float) -> int:
        """The number of codebooks whose bitrate is closest to `kbps` without exceeding n_q."""
        per_q = self.frame_rate * self.bits_per_code / 1000
        n = max(1, min(self.n_q, round(kbps / per_q)))
        return n


@dataclass(frozen=True)
class TrainConfig(_Dict):
    """How to train. `steps` wins over `num_epochs` when both are given."""

    batch_size: int = 8
    segment_seconds: float = 0.5
    learning_rate: float = 1e-3
    adam_betas: tuple = (0.8, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 20
    max_grad_norm: float = 1.0  # gradient-norm clipping (every run)
    num_epochs: int = 1
    steps: int | None = None
    checkpoint_every: int = 100
    eval_clips: int = 8  # validation clips used for the per-epoch diagnostics
    corpus_minutes: float = 1.5  # minutes of embedded corpus when no --data_dir is given
    val_fraction: float = 0.1
    seed: int = 0
    amp: str = "off"  # "bf16", "fp16" or "off"
    on_nonfinite: str = "stop"  # "stop" or "skip" a step whose loss or gradients are NaN/inf
    optimizer: str = "adamw"  # "adamw" (with warm-up) or "adam" (the story's plain Adam)
    # ---- ingredients of the working recipe (telucodec.training.recipes); the defaults are the story's training ----
    loss: str = "story"  # "story" (L1+MSE, log-mel, VQ) or "working" (waveform, STFT, mel, VQ)
    balancer: bool = False  # with loss="working": weights as shares of the output gradient
    waveform_share: float = 0.15  # the waveform L1's share (STFT and mel split the rest equally)
    spectral_floor_db: float | None = None  # working loss: floor log spectra this many dB under each example's
    # loudest bin (None: an absolute 1e-5, silence owns the gradient)
    pre_emphasis: float | None = None  # working loss: compare y[n] - c*y[n-1] (c = this) instead of y[n]
    waveform_lowpass_hz: float | None = None  # working loss: the waveform L1 sees only the band under this
    envelope_weight: float = 1.0  # weight of the envelope post-filter's loss (when the codec has one)
    lr_schedule: str = "constant"  # "constant" after warm-up, or "cosine" down to 10 % at the last step
    loudness_lufs: float | None = None  # normalise every training clip to this loudness (pyloudnorm)
    gain_jitter_db: float = 0.0  # random gain of each training crop, uniform in +-this many dB
    keep_every: int = 0  # > 0: also keep a weights snapshot every this many steps (curves)
    # ---- adversarial training (telucodec.training.adversarial; the "adversarial" recipe); off by default ----
    discriminators: tuple = ()  # any of "msstft" (EnCodec's MS-STFT) and "mpd" (HiFi-GAN's multi-period)
    disc_channels: int = 8  # width of every discriminator
    adversarial_loss: str = "hinge"  # "hinge" or "lsgan" (least squares)
    adversarial_weight: float = 0.25  # with the balancer: share of the output gradient; without: plain weight
    feature_weight: float = 0.25  # the same for the feature-matching loss
    disc_learning_rate: float | None = None  # default: the codec's learning rate (same schedule)
    disc_start_step: int = 0  # the discriminators start training at this step...
    disc_warmup_steps: int = 0  # ...and the codec gets their gradient this many steps later


@dataclass(frozen=True)
class Preset:
    codec: CodecConfig
    train: TrainConfig
    description: str = ""


PRESETS = {
    # Trains in seconds on a laptop CPU: what CI and the stored notebook outputs use.
    "ci": Preset(
        CodecConfig(channels=8, strides=(4, 8, 10), dilations=(1,), latent_dim=32),
        TrainConfig(batch_size=8, segment_seconds=0.5, corpus_minutes=1.5, checkpoint_every=100, eval_clips=6),
        "0.54M parameters (0.14M convolution, 0.39M codebooks); measured on one Intel Xeon thread: about 5 training "
        "steps/s (batch 8 x 1 s, story loss), encode+decode about 120x real time",
    ),
    # Minutes on a CPU, seconds on a GPU.
    "small": Preset(
        CodecConfig(channels=8, dilations=(1, 3), latent_dim=64),
        TrainConfig(batch_size=16, segment_seconds=1.0, corpus_minutes=5.0, checkpoint_every=200, eval_clips=12),
        "1.36M parameters (0.57M convolution, 0.79M codebooks); encode+decode about 58x real time on one Intel "
        "Xeon thread",
    ),
    # The shipped CPU model of the working recipe (telucodec.training.recipes): 50x real time on one CPU thread.
    "cpu": Preset(
        CodecConfig(channels=12, strides=(4, 8, 10), dilations=(1,), latent_dim=32),
        TrainConfig(batch_size=8, segment_seconds=1.0, corpus_minutes=12.0, checkpoint_every=250, eval_clips=8),
        "the shipped model: 0.70M parameters (0.31M convolution, 0.39M codebooks); measured on one Intel Xeon "
        "thread: about 2 working-recipe steps/s (batch 8 x 1 s), encode+decode about 95x real time",
    ),
    # The cpu preset's budget spent on depth: four downsampling stages from 8 channels (64 at the latent), faster
    # to train and to run than "cpu" on one thread and with more convolution weights.
    "cpu-deep": Preset(
        CodecConfig(channels=8, strides=(2, 4, 5, 8), dilations=(1,), latent_dim=32),
        TrainConfig(batch_size=8, segment_seconds=1.0, corpus_minutes=12.0, checkpoint_every=250, eval_clips=8),
        "0.83M parameters (0.44M convolution, 0.39M codebooks); measured on one AMD EPYC thread: 2.4 to 3.2 "
        "working-recipe steps/s (batch 8 x 1 s, beside another training run), encode+decode about 140x real time (cpu: 110x there)",
    ),
    # The GPU model.
    "full": Preset(
        CodecConfig(channels=16, dilations=(1, 3, 9), latent_dim=64),
        TrainConfig(
            batch_size=32, segment_seconds=1.0, corpus_minutes=12.0, checkpoint_every=500, eval_clips=24, amp="bf16"
        ),
        "3.25M parameters (2.46M convolution, 0.79M codebooks); encode+decode about 7x real time on one CPU "
        "thread (results/bench/speed.md); meant for a GPU",
    ),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
