"""Envelope codebooks: part of the bitstream carries the input's spectral envelope above 1 kHz, explicitly.

Why (chapter 15, `scripts/envelope_oracle.py`): the trained decoder reproduces the band under 1 kHz to 1.5 dB,
but above it its band levels barely follow the input's (frame-by-frame correlation 0.25-0.66), and that is most
of what it loses: give its output the input's level in 32 mel bands at 50 frames/s and PESQ-WB goes from 1.52 to
2.6 on the tuning clips. A learned post-filter that predicts those levels from the codes did not learn them
(`telucodec.codec.postfilter`; results/cpu/envelope_oracle/README.md). So the encoder sends them, as speech codecs have sent spectral
envelopes since LPC vocoders: per code frame (20 ms), the natural-log energies of the 21 mel bands above 1 kHz
(32 HTK mel bands from 0 to 8 kHz, STFT window 640 and hop 160, pairs of frames averaged) are quantized by a
residual VQ of k-means codebooks (1024 codes each, 10 bits, like the codec's own), and the decoder re-shapes its
waveform's STFT so that each of those bands has the decoded level, keeping its own fine structure and phase:

    codes (n_q rows) = [ the codec's RVQ codes (n_q - e rows) | envelope codes (e rows) ]
    out = istft(stft(decoder(codec codes)) * gain),  gain per band = sqrt(decoded energy / the decoder's energy)

`CodecConfig.envelope_split` says how many of the n_q codebooks go to the envelope at each bitrate (for example
((3, 1), (6, 2), (12, 3)): 1 of 3 at 1.5 kbps, 2 of 6 at 3 kbps, 3 of 12 at 6 kbps). The codebooks are fitted after
training (`fit_codebooks`, about a minute) on the training split's envelopes; the codec's weights are not changed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_BANDS, N_FFT, HOP, FIRST_HZ = 32, 640, 160, 1000.0
FLOOR = 1e-7  # energies are floored here (about 100 dB under a loud band) before the log


def stages_for(split: tuple, n_q: int) -> int:
    """Envelope codebooks among `n_q`: the entry of `split` ((total, envelope) pairs) with the largest total not
    above n_q; 0 below the smallest."""
    usable = [e for total, e in split if total <= n_q]
    return usable[-1] if usable else 0


class EnvelopeCoder(nn.Module):
    def __init__(self, n_stages: int, codebook_size: int = 1024, sample_rate: int = 16000, hop_length: int = 320):
        super().__init__()
        if hop_length != 2 * HOP or sample_rate != 16000:
            raise ValueError("envelope codebooks need 16 kHz audio and 50 codec frames/s (hop 320)")
        from telucodec.codec.spectral import mel_band_filters

        fb, spread = mel_band_filters(N_FFT, N_BANDS, sample_rate, "cpu")
        centres = (fb * torch.fft.rfftfreq(N_FFT, 1 / sample_rate)[:, None]).sum(0) / fb.sum(0)
        self.first = int((centres < FIRST_HZ).sum())  # 11: bands 11..31 are coded
        self.dims = N_BANDS - self.first
        self.register_buffer("filters", fb, persistent=False)
        self.register_buffer("spread", spread, persistent=False)
        self.register_buffer("codebooks", torch.zeros(n_stages, codebook_size, self.dims))

    # ------------------------------------------------------------------ analysis and synthesis
    def _stft(self, wav):
        from telucodec.codec.spectral import _window

        window = _window(N_FFT, str(wav.device))  # cached, as the losses' STFTs are
        return torch.stft(wav.reshape(-1, wav.shape[-1]).float(), N_FFT, HOP, window=window, return_complex=True)

    def _pooled(self, spec, frames: int) -> torch.Tensor:
        """(batch, 32, frames) log band energies, averaged over pairs of STFT frames (one per code frame)."""
        e = torch.einsum("bft,fk->bkt", spec.real.square() + spec.imag.square(), self.filters)
        e = F.avg_pool1d(e, 2, 2, ceil_mode=True)
        e = F.pad(e, (0, max(0, frames - e.shape[-1])), mode="replicate")[..., :frames]
        return torch.log(e + FLOOR)

    def envelope(self, wav: torch.Tensor, frames: int) -> torch.Tensor:
        """(batch, dims, frames) log energies of the coded bands of `wav` (batch, 1, samples)."""
        return self._pooled(self._stft(wav), frames)[:, self.first :]

    def impose(self, raw: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        """`raw` (batch, 1, samples) with its coded bands re-shaped to `envelope` (batch, dims, code frames)."""
        spec = self._stft(raw)
        own = self._pooled(spec, envelope.shape[-1])
        gain = torch.zeros_like(own)
        gain[:, self.first :] = 0.5 * (envelope - own[:, self.first :])
        gain = F.interpolate(gain, size=spec.shape[-1], mode="linear", align_corners=False).clamp(-10.0, 10.0)
        gain = torch.exp(torch.einsum("fk,bkt->bft", self.spread, gain))
        from telucodec.codec.spectral import _window

        window = _window(N_FFT, str(raw.device))
        out = torch.istft(spec * gain, N_FFT, HOP, window=window, length=raw.shape[-1])
        return out[:, None].to(raw.dtype)

    # ------------------------------------------------------------------ quantization
    def encode(self, envelope: torch.Tensor, n_stages: int) -> torch.Tensor:
        """(batch, dims, frames) -> (batch, n_stages, frames) codes, stage by stage on the residual."""
        if n_stages > self.codebooks.shape[0]:
            raise ValueError(f"this model has {self.codebooks.shape[0]} envelope codebooks, not {n_stages}")
        residual = envelope.transpose(1, 2).float()  # (batch, frames, dims)
        codes = []
        for book in self.codebooks[:n_stages]:
            idx = torch.cdist(residual, book[None].expand(residual.shape[0], -1, -1)).argmin(-1)
            residual = residual - book[idx]
            codes.append(idx)
        return torch.stack(codes, 1) if codes else envelope.new_zeros(envelope.shape[0], 0, envelope.shape[-1]).long()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, stages, frames) codes -> (batch, dims, frames) envelope."""
        out = sum(self.codebooks[i][codes[:, i]] for i in range(codes.shape[1]))
        return out.transpose(1, 2)

    @torch.no_grad()
    def fit_codebooks(
        self, clips, gains_db=(-6.0, 0.0, 6.0), loudness_lufs: float = -23.0, iters: int = 25, seed: int = 0
    ) -> dict:
        """k-means codebooks, stage by stage on the residuals, from the envelopes of `clips` (float32 arrays at
        16 kHz, loudness-normalised to `loudness_lufs` + each of `gains_db`, the training recipe's range).
        Returns {"vectors": n, "rms_residual_nats": [after each stage]}."""
        from telucodec.data.audio_io import normalise_loudness

        vectors = []
        for clip in clips:
            for g in gains_db:
                x = torch.from_numpy(normalise_loudness(clip, 16000, loudness_lufs + g))[None, None]
                frames = -(-x.shape[-1] // (2 * HOP))
                vectors.append(self.envelope(x, frames)[0].T)
        residual = torch.cat(vectors)
        gen = torch.Generator().manual_seed(seed)
        k = self.codebooks.shape[1]
        if len(residual) < 4 * k:
            raise ValueError(f"{len(residual)} envelope frames cannot fit {k}-code codebooks (need {4 * k})")
        report = []
        for stage in range(self.codebooks.shape[0]):
            book = residual[torch.randperm(len(residual), generator=gen)[:k]].clone()
            for _ in range(iters):
                assign = torch.cdist(residual, book).argmin(1)
                sums = torch.zeros_like(book).index_add_(0, assign, residual)
                counts = torch.bincount(assign, minlength=k).float()[:, None]
                empty = residual[torch.randint(len(residual), (k,), generator=gen)]
                book = torch.where(counts > 0, sums / counts.clamp_min(1), empty)
            self.codebooks[stage] = book
            residual = residual - book[torch.cdist(residual, book).argmin(1)]
            report.append(float(residual.pow(2).mean().sqrt()))
        return {"vectors": int(sum(len(v) for v in vectors)), "rms_residual_nats": report}


DEFAULT_SPLIT = ((3, 1), (6, 2), (12, 3))  # 1.5 kbps: 2 codec + 1 envelope codebook; 3 kbps: 4 + 2; 6 kbps: 9 + 3
