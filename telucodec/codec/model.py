"""The codec: a strided convolutional encoder, a residual vector quantizer and a mirrored decoder ending in tanh."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from telucodec.codec.quantizer import ResidualVQ
from telucodec.config import CodecConfig
from telucodec.fixes import Fixes


class ResidualUnit(nn.Module):
    """x + conv1x1(elu(conv7_dilated(elu(x)))): widens the receptive field without changing the length."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        return x + self.conv2(F.elu(self.conv1(F.elu(x))))


class EncoderBlock(nn.Sequential):
    """Residual units, then a strided conv that divides the length by `stride` and doubles the channels."""

    def __init__(self, channels: int, stride: int, dilations):
        super().__init__(
            *[ResidualUnit(channels, d) for d in dilations],
            nn.ELU(),
            nn.Conv1d(channels, 2 * channels, 2 * stride, stride=stride, padding=(stride + 1) // 2),
        )


class DecoderBlock(nn.Sequential):
    """A transposed conv that multiplies the length by `stride` and halves the channels, then residual units."""

    def __init__(self, channels: int, stride: int, dilations):
        super().__init__(
            nn.ELU(),
            nn.ConvTranspose1d(
                channels,
                channels // 2,
                2 * stride,
                stride=stride,
                padding=stride // 2 + stride % 2,
                output_padding=stride % 2,
            ),
            *[ResidualUnit(channels // 2, d) for d in dilations],
        )


class Encoder(nn.Sequential):
    def __init__(self, cfg: CodecConfig):
        ch = cfg.channels
        layers = [nn.Conv1d(1, ch, 7, padding=3)]
        for s in cfg.strides:
            layers.append(EncoderBlock(ch, s, cfg.dilations))
            ch *= 2
        if cfg.encoder_layers:  # capacity at the frame rate (telucodec.codec.backbone)
            from telucodec.codec.backbone import FrameBackbone

            layers += [
                FrameBackbone(ch, cfg.encoder_dim, cfg.encoder_layers),
                nn.Conv1d(cfg.encoder_dim, cfg.latent_dim, 1),
            ]
        else:
            layers += [nn.ELU(), nn.Conv1d(ch, cfg.latent_dim, 3, padding=1)]
        super().__init__(*layers)


class Decoder(nn.Module):
    """Mirror of the encoder. Ends in tanh; with fix 3, a learnable scale multiplies the tanh output.

    With `istft_blocks` = k > 0 (a head to measure, Vocos-style) it keeps only its first k upsampling blocks; a
    conv then predicts, per frame of an STFT with hop `istft_hop` and window 4 x hop, a log magnitude and a phase
    for every bin, and an inverse STFT makes the waveform (no tanh). Every band's level in every frame is then one
    output of the network rather than an interference pattern of transposed convolutions."""

    def __init__(self, cfg: CodecConfig, fixes: Fixes):
        super().__init__()
        self.vocos = cfg.head == "vocos"
        if self.vocos:  # ConvNeXt blocks at the frame rate, then an inverse STFT
            from telucodec.codec.backbone import FrameBackbone, ISTFTHead

            self.istft = False
            self.body = nn.Sequential(
                FrameBackbone(cfg.latent_dim, cfg.head_dim, cfg.head_layers, norm_in=False),
                ISTFTHead(cfg.head_dim, cfg.hop_length, cfg.head_upsample),
            )
            self.output_scale = (
                nn.Parameter(torch.tensor(float(fixes.output_scale_init))) if fixes.output_scale else None
            )
            return
        ch = cfg.channels * 2 ** len(cfg.strides)
        layers = [nn.Conv1d(cfg.latent_dim, ch, 7, padding=3)]
        blocks = tuple(reversed(cfg.strides))[: cfg.istft_blocks or None]
        for s in blocks:
            layers.append(DecoderBlock(ch, s, cfg.dilations))
            ch //= 2
        self.istft = cfg.istft_blocks > 0
        if self.istft:
            self.hop, self.n_fft = cfg.istft_hop, 4 * cfg.istft_hop
            layers += [nn.ELU(), nn.Conv1d(ch, 2 * (self.n_fft // 2 + 1), 7, padding=3)]
        else:
            layers += [nn.ELU(), nn.Conv1d(ch, 1, 7, padding=3)]
        self.body = nn.Sequential(*layers)
        if fixes.output_scale:  # fix 3
            self.output_scale = nn.Parameter(torch.tensor(float(fixes.output_scale_init)))
        else:
            self.output_scale = None

    def _inverse_stft(self, h):
        log_mag, phase = h.float().chunk(2, dim=1)  # (batch, bins, frames) each
        spec = torch.polar(torch.exp(log_mag.clamp(max=8.0)), phase)  # a magnitude that cannot explode
        from telucodec.codec.spectral import _window

        window = _window(self.n_fft, str(h.device))  # cached, as the losses' STFTs are
        y = torch.istft(spec, self.n_fft, self.hop, window=window, center=True, length=h.shape[-1] * self.hop)
        return y[:, None]

    def forward(self, latent):
        h = self.body(latent)
        y = h if self.vocos else self._inverse_stft(h) if self.istft else torch.tanh(h)
        return y * self.output_scale if self.output_scale is not None else y


def apply_weight_norm(module: nn.Module) -> nn.Module:
    """Weight normalisation (w = g * v / ||v||, per output channel) on every convolution of `module`: the
    reparametrisation SoundStream, EnCodec and DAC train with. It decouples a layer's scale from its direction."""
    from torch.nn.utils.parametrizations import weight_norm

    for child in list(module.modules()):
        if isinstance(child, (nn.Conv1d, nn.ConvTranspose1d)) and child.groups == 1:  # not ConvNeXt's depthwise
            weight_norm(child)
    return module


class Codec(nn.Module):
    """Encoder -> ResidualVQ -> Decoder. Input and output are waveforms shaped (batch, 1, samples)."""

    def __init__(self, config: CodecConfig = CodecConfig(), fixes: Fixes = Fixes()):
        super().__init__()
        self.config, self.fixes = config, fixes
        self.encoder = Encoder(config)
        self.quantizer = ResidualVQ(
            config.latent_dim,
            config.n_q,
            config.codebook_size,
            fixes,
            config.commitment_weight,
            config.ema_decay,
            config.dead_code_threshold,
            config.kmeans_init,
            config.dead_code_relative,
        )
        self.decoder = Decoder(config, fixes)
        self.envelope = None
        if config.envelope_split:
            from telucodec.codec.envelope import EnvelopeCoder

            self.envelope = EnvelopeCoder(
                max(e for _, e in config.envelope_split), config.codebook_size, config.sample_rate, config.hop_length
            )
        self.postfilter = None
        if config.postfilter_bands:
            from telucodec.codec.postfilter import EnvelopePostfilter

            self.postfilter = EnvelopePostfilter(
                config.latent_dim, config.hop_length, config.postfilter_bands, config.sample_rate
            )
        if config.weight_norm:
            apply_weight_norm(self.encoder)
            apply_weight_norm(self.decoder.body)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second at n_q codebooks (default: all)."""
        return self.config.bitrate(n_q)

    def _pad(self, wav):
        length = wav.shape[-1]
        pad = (-length) % self.hop_length
        return (F.pad(wav, (0, pad)) if pad else wav), length

    def sample_n_q(self) -> int:
        """Quantizer dropout: with probability p, train this step with fewer codebooks (from n_q_choices)."""
        cfg = self.config
        if not self.training or cfg.quantizer_dropout <= 0:
            return cfg.n_q
        if torch.rand(()) >= cfg.quantizer_dropout:
            return cfg.n_q
        choices = [n for n in cfg.n_q_choices if n <= cfg.n_q] or [cfg.n_q]
        return choices[int(torch.randint(len(choices), ()))]

    def forward(self, wav: torch.Tensor, n_q: int | None = None, bypass_quantizer: bool = False) -> dict:
        """Encode, quantize and decode. Returns the output waveform, codes, the VQ loss and diagnostics.
        `bypass_quantizer=True` decodes the continuous latent (a plain autoencoder: the debugging baseline)."""
        padded, length = self._pad(wav)
        z = self.encoder(padded)
        if bypass_quantizer:
            return {
                **self._decode(z, length),
                "z": z,
                "n_q": 0,
                "vq_loss": z.new_zeros(()),
                "codes": None,
                "quantized": z,
                "commitment": z.new_zeros(0),
                "codebook_loss": z.new_zeros(0),
            }
        n_q = n_q or self.sample_n_q()
        e = self.envelope_stages(n_q) if not self.training else 0  # the envelope is fitted after training
        vq = self.quantizer(z.float(), n_q - e)
        out = self._decode(vq["quantized"].to(z.dtype), length)
        if e:
            env_codes = self.envelope.encode(self.envelope.envelope(padded, z.shape[-1]), e)
            out["wav"] = self.envelope.impose(out["wav"], self.envelope.decode(env_codes))
            vq["codes"] = torch.cat([vq["codes"], env_codes], 1)
        return {**out, "z": z, "n_q": n_q, **vq}

    def envelope_stages(self, n_q: int) -> int:
        """How many of `n_q` codebooks carry the spectral envelope (telucodec.codec.envelope; 0 without it)."""
        from telucodec.codec.envelope import stages_for

        return stages_for(self.config.envelope_split, n_q) if self.envelope is not None else 0

    def _decode(self, latent: torch.Tensor, length: int | None) -> dict:
        """{"wav": the output}; with the envelope post-filter also "wav_raw" (the decoder's own output, which the
        reconstruction loss trains) and "envelope" (the predicted log band energies, which the envelope loss
        trains)."""
        raw = self.decoder(latent)
        raw = raw[..., :length] if length is not None else raw
        if self.postfilter is None:
            return {"wav": raw}
        out, envelope = self.postfilter(raw, latent)
        return {"wav": out, "wav_raw": raw, "envelope": envelope}

    def fold_weight_norm(self) -> Codec:
        """Replace every weight-normalised convolution by a plain one with the same weights (for inference: one
        fewer computation per layer and call). The config then says weight_norm=False, which matches the
        state dict it now has."""
        from dataclasses import replace

        from torch.nn.utils import parametrize

        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        if self.config.weight_norm:
            self.config = replace(self.config, weight_norm=False)
        return self

    @torch.no_grad()
    def init_codebooks(self, batches) -> int:
        """k-means initialisation of every codebook from the latents of `batches` (waveforms (B, 1, T)), stage by
        stage on the residuals left by the stages before it. Returns the number of latent vectors used."""
        was_training = self.training
        self.eval()
        z = torch.cat(
            [self.encoder(self._pad(x)[0]).float().transpose(1, 2).reshape(-1, self.config.latent_dim) for x in batches]
        )
        self.quantizer.kmeans_init_from(z)
        self.train(was_training)
        return z.shape[0]

    @torch.no_grad()
    def encode_tensor(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """(B, 1, T) waveform -> (B, n_q, frames) integer codes."""
        padded, _ = self._pad(wav)
        z = self.encoder(padded).float()
        n_q = n_q or self.config.n_q
        e = self.envelope_stages(n_q)
        was_training = self.quantizer.training
        self.quantizer.eval()
        codes = self.quantizer(z, n_q - e)["codes"]
        self.quantizer.train(was_training)
        if e:
            codes = torch.cat([codes, self.envelope.encode(self.envelope.envelope(padded, z.shape[-1]), e)], 1)
        return codes

    @torch.no_grad()
    def decode_tensor(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """(B, n_q, frames) codes -> (B, 1, samples) waveform, trimmed to `length` if given."""
        e = self.envelope_stages(codes.shape[1])
        wav = self._decode(self.quantizer.decode_codes(codes[:, : codes.shape[1] - e]), length)["wav"]
        return self.envelope.impose(wav, self.envelope.decode(codes[:, codes.shape[1] - e :])) if e else wav

    def parameter_groups(self) -> dict:
        """Parameter counts per part (encoder, quantizer, decoder)."""
        count = lambda m: sum(p.numel() for p in m.parameters())
        groups = {"encoder": count(self.encoder), "quantizer": count(self.quantizer), "decoder": count(self.decoder)}
        if self.postfilter is not None:
            groups["postfilter"] = count(self.postfilter)
        if self.envelope is not None:
            groups["envelope codebooks"] = self.envelope.codebooks.numel()
        return groups
