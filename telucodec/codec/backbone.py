"""Capacity at the frame rate: ConvNeXt blocks and a Vocos-style inverse-STFT head.

A decoder that synthesises 16 kHz audio with transposed convolutions spends most of its arithmetic at the sample
rate, where a CPU can afford only a few channels. Vocos (Siuzdak, 2023) keeps every layer at the frame rate and lets
an inverse STFT make the waveform: a ConvNeXt backbone predicts, for every STFT frame, a log magnitude and a phase
per bin. At 50 frames/s a layer of width 256 costs 2 x 50 x its weights per second of audio, so a few million
weights run many times faster than real time on one CPU thread. The encoder can end in the same blocks.

Every layer here is non-causal (centred kernels): the codec that uses them has a look-ahead (telucodec.codec.model).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvNeXtBlock(nn.Module):
    """x + gamma * pw2(gelu(pw1(layernorm(dwconv7(x))))), the block of ConvNeXt and Vocos, on (batch, dim, frames)."""

    def __init__(self, dim: int, expansion: int = 3, layer_scale: float = 0.1, kernel: int = 7):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, expansion * dim)
        self.pw2 = nn.Linear(expansion * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x):
        h = self.dwconv(x).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class FrameBackbone(nn.Module):
    """conv7 (in -> dim), layer norm (if `norm_in`), `layers` ConvNeXt blocks, layer norm: all at the frame rate.

    A decoder's backbone takes `norm_in=False`: a layer norm right after the embedding would make the decoder blind
    to the scale of the quantized latent, and the commitment loss, which shrinks with that scale, could then shrink
    the latent towards zero at no cost to reconstruction."""

    def __init__(self, in_dim: int, dim: int, layers: int, norm_in: bool = True):
        super().__init__()
        self.embed = nn.Conv1d(in_dim, dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6) if norm_in else nn.Identity()
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, layer_scale=1.0 / max(layers, 1)) for _ in range(layers))
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.norm_out(x.transpose(1, 2)).transpose(1, 2)


class ISTFTHead(nn.Module):
    """(batch, dim, frames) -> (batch, 1, frames * hop_length) through an inverse STFT with hop
    hop_length / upsample and a window of 4 x that hop: a linear layer predicts `upsample` STFT frames per codec
    frame, each a log magnitude and a phase for every bin. "Same" padding (as Vocos): the output has exactly
    frames x hop_length samples, every one covered by four windows."""

    def __init__(self, dim: int, hop_length: int, upsample: int = 2):
        super().__init__()
        if hop_length % upsample:
            raise ValueError(f"the hop length {hop_length} must be a multiple of head_upsample {upsample}")
        self.upsample, self.hop = upsample, hop_length // upsample
        self.n_fft = 4 * self.hop
        self.bins = self.n_fft // 2 + 1
        self.out = nn.Linear(dim, upsample * 2 * self.bins)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, x):
        B, _, T = x.shape
        h = self.out(x.transpose(1, 2)).float()  # (B, T, up * 2 * bins)
        h = h.reshape(B, T * self.upsample, 2, self.bins)
        log_mag, phase = h[:, :, 0], h[:, :, 1]
        spec = torch.polar(torch.exp(log_mag.clamp(max=6.0)), phase)  # |X| <= e^6: cannot explode
        return self.istft(spec)[:, None]

    def istft(self, spec: torch.Tensor) -> torch.Tensor:
        """spec (B, frames, bins) complex -> (B, frames * hop) real: windowed overlap-add, divided by the summed
        squared window, with (n_fft - hop) / 2 samples trimmed at each end."""
        B, n_frames, _ = spec.shape
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1) * self.window  # (B, F, n_fft)
        out_len = (n_frames - 1) * self.hop + self.n_fft
        y = F.fold(frames.transpose(1, 2), (1, out_len), (1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        env = F.fold(
            self.window.square().expand(1, n_frames, -1).transpose(1, 2),
            (1, out_len),
            (1, self.n_fft),
            stride=(1, self.hop),
        )[0, 0, 0]
        pad = (self.n_fft - self.hop) // 2
        return (y / env.clamp(min=1e-8))[:, pad : pad + n_frames * self.hop]
