"""The envelope post-filter: the decoder's waveform, re-shaped band by band to a spectral envelope predicted
from the codes (the `envelope_postfilter` ingredient; off unless `CodecConfig.postfilter_bands` > 0).

Why (chapter 15, measured on the shipped model): above 1 kHz its output's band levels barely follow the input's
(frame-by-frame correlation 0.5-0.7 in 1-4 kHz, against 0.99 under 1 kHz), and that is most of what it loses. Give
its output the input's envelope in 32 mel bands at 50 frames/s, keeping its own fine structure and phase, and the
10 tuning clips score PESQ-WB 2.6 and STOI 0.94 instead of 1.52 and 0.75 (`scripts/envelope_oracle.py`). The
decoder cannot learn that envelope itself, because the waveform L1 pulls every band whose phase it cannot predict
towards silence; so the envelope gets its own small network and its own loss, and the waveform loss never sees it:

    raw  = decoder(codes)                                    trained by the working loss, as before
    E    = log band energies of raw (32 mel bands, STFT hop = half a codec frame)
    Ê    = E.detach() + head(codes)                          the head predicts a log gain per band and half-frame
    out  = istft(stft(raw) * exp((Ê - E) / 2), per bin)     what the codec outputs
    loss = |Ê - log band energies of the input|              (`envelope_loss`, only the head and encoder learn)

The head starts at zero (out = raw), runs at the frame rate and costs ~1 % of the decoder's time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from telucodec.codec.spectral import _window, mel_band_filters

FLOOR = 1e-6  # log energies are floored 60 dB under each example's loudest band-frame


class EnvelopePostfilter(nn.Module):
    def __init__(self, latent_dim: int, hop_length: int, n_bands: int = 32, sample_rate: int = 16000, width: int = 128):
        super().__init__()
        if hop_length % 2:
            raise ValueError("the envelope post-filter needs an even hop length (two STFT frames per code frame)")
        self.n_bands, self.sample_rate = n_bands, sample_rate
        self.hop = hop_length // 2
        self.n_fft = 4 * self.hop
        self.head = nn.Sequential(
            nn.Conv1d(latent_dim, width, 3, padding=1),
            nn.ELU(),
            nn.Conv1d(width, width, 3, padding=1),
            nn.ELU(),
            nn.Conv1d(width, width, 3, padding=1),
            nn.ELU(),
            nn.Conv1d(width, 2 * n_bands, 1),
        )
        nn.init.zeros_(self.head[-1].weight)  # a log gain of 0 everywhere: at step 0, out = raw
        nn.init.zeros_(self.head[-1].bias)

    def _stft(self, wav: torch.Tensor) -> torch.Tensor:
        window = _window(self.n_fft, str(wav.device))
        return torch.stft(
            wav.reshape(-1, wav.shape[-1]).float(),
            self.n_fft,
            self.hop,
            window=window,
            return_complex=True,
            center=True,
        )

    def log_envelope(self, wav: torch.Tensor, spec: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, bands, frames) natural-log band energies of `wav` (batch, 1, samples), floored 60 dB under
        each example's loudest band-frame."""
        spec = self._stft(wav) if spec is None else spec
        fb, _ = mel_band_filters(self.n_fft, self.n_bands, self.sample_rate, str(spec.device))
        energy = torch.einsum("bft,fk->bkt", spec.real.square() + spec.imag.square(), fb)
        floor = FLOOR * energy.detach().amax(dim=(1, 2), keepdim=True) + 1e-12
        return torch.log(energy + floor)

    def forward(self, raw: torch.Tensor, quantized: torch.Tensor) -> tuple:
        """(post-filtered waveform (batch, 1, samples), predicted log envelope (batch, bands, frames)).
        `raw` is detached: the envelope loss reaches the head and, through `quantized`, the encoder only."""
        raw = raw.detach()
        spec = self._stft(raw)  # (batch, bins, frames)
        frames = spec.shape[-1]
        log_e = self.log_envelope(raw, spec)
        g = self.head(quantized.float())  # (batch, 2 * bands, code frames)
        b, _, k = g.shape
        g = g.reshape(b, 2, self.n_bands, k).permute(0, 2, 3, 1).reshape(b, self.n_bands, 2 * k)
        g = F.interpolate(g, size=frames, mode="linear", align_corners=False)
        predicted = log_e + g
        _, spread = mel_band_filters(self.n_fft, self.n_bands, self.sample_rate, str(spec.device))
        gain = torch.exp(0.5 * torch.einsum("fk,bkt->bft", spread, g.clamp(-10.0, 10.0)))
        out = torch.istft(
            spec * gain,
            self.n_fft,
            self.hop,
            window=_window(self.n_fft, str(spec.device)),
            center=True,
            length=raw.shape[-1],
        )
        return out[:, None].to(raw.dtype), predicted


def envelope_loss(postfilter: EnvelopePostfilter, predicted: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the predicted log band energies and the input's (natural log of energy: 1.0 is 4.3 dB)."""
    with torch.autocast(device_type=ref.device.type, enabled=False):
        target = postfilter.log_envelope(ref.float())
        return (predicted.float() - target).abs().mean()
