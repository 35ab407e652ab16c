"""Discriminators for adversarial training: EnCodec's multi-scale STFT discriminator and HiFi-GAN's multi-period
waveform discriminator, sized for a CPU.

Every discriminator takes a waveform batch (B, 1, T) and returns `(logits, features)`: one logit map per
sub-discriminator (a realness score per time-frequency or time-period cell, not one per clip) and, for each
sub-discriminator, the list of its hidden activations (for the feature-matching loss).

- `MultiScaleSTFTDiscriminator` (EnCodec, Défossez et al. 2022): for each window size n_fft, a 2-D conv net over
  the complex STFT (real and imaginary parts as two channels, so it sees phase). Input (B, 2, frames, bins) with
  bins = n_fft/2 + 1; a (3, 9) conv, three (3, 9) convs with dilations 1, 2, 4 in time and stride 2 in frequency,
  a (3, 3) conv (five feature maps, (B, channels, frames, ...)), then a (3, 3) conv to one channel: logits
  (B, 1, frames, ceil(bins / 8)), frames = T / (n_fft / 4) + 1.
- `MultiPeriodDiscriminator` (HiFi-GAN, Kong et al. 2020; DAC): for each period p, the waveform folded into a
  (T / p, p) image and 2-D convs with kernels (5, 1), stride 3 along time, so each column is one phase of a
  p-periodic pattern. Logits (B, 1, ~T / (81 p), p); five feature maps.

Both use weight normalisation and leaky ReLU, as their papers do; `channels` sets the width (EnCodec uses 32 and
HiFi-GAN up to 1024; 8 keeps a CPU step affordable).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

KINDS = ("msstft", "mpd")


class STFTDiscriminator(nn.Module):
    """One scale of the MS-STFT discriminator."""

    def __init__(self, n_fft: int, channels: int = 8, dilations=(1, 2, 4)):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(2, channels, (3, 9), padding=(1, 4)))]
        for d in dilations:
            convs.append(
                weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)))
            )
        convs.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor):
        spec = torch.stft(
            wav.reshape(-1, wav.shape[-1]).float(),
            self.n_fft,
            self.hop,
            window=self.window,
            normalized=True,
            return_complex=True,
        )  # (B, bins, frames)
        h = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # (B, 2, frames, bins)
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            features.append(h)
        return self.post(h), features


class _Bank(nn.Module):
    """Sub-discriminators run on the same waveform: ([logits per sub], [feature maps per sub])."""

    def forward(self, wav: torch.Tensor):
        outs = [d(wav) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class MultiScaleSTFTDiscriminator(_Bank):
    def __init__(self, n_ffts=(1024, 512, 256), channels: int = 8):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, channels) for n in n_ffts)


class PeriodDiscriminator(nn.Module):
    """One period of the multi-period discriminator."""

    def __init__(self, period: int, channels: int = 8):
        super().__init__()
        self.period = period
        widths = [1, channels, 2 * channels, 4 * channels, 4 * channels]
        self.convs = nn.ModuleList(
            [weight_norm(nn.Conv2d(widths[i], widths[i + 1], (5, 1), stride=(3, 1), padding=(2, 0))) for i in range(4)]
            + [weight_norm(nn.Conv2d(widths[-1], widths[-1], (5, 1), padding=(2, 0)))]
        )
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: torch.Tensor):
        x = wav.reshape(wav.shape[0], 1, -1).float()
        pad = (-x.shape[-1]) % self.period
        if pad:
            x = F.pad(x, (0, pad), mode="reflect")
        h = x.reshape(x.shape[0], 1, -1, self.period)  # (B, 1, T / p, p)
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            features.append(h)
        return self.post(h), features


class MultiPeriodDiscriminator(_Bank):
    def __init__(self, periods=(2, 3, 5, 7, 11), channels: int = 8):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)


class Discriminators(nn.Module):
    """Several discriminators side by side; their sub-discriminators' logits and features are concatenated."""

    def __init__(self, kinds=KINDS, channels: int = 8):
        super().__init__()
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(
                f"unknown discriminator(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}"
            )
        self.kinds = tuple(kinds)
        build = {"msstft": MultiScaleSTFTDiscriminator, "mpd": MultiPeriodDiscriminator}
        self.parts = nn.ModuleList(build[k](channels=channels) for k in self.kinds)

    def forward(self, wav: torch.Tensor):
        logits, features = [], []
        for part in self.parts:
            lg, ft = part(wav)
            logits += lg
            features += ft
        return logits, features
