"""What one code frame depends on: the codec's receptive field, measured (:func:`context`).

The receptive field is not read from the config: :func:`context` *measures* it, by back-propagating from one
frame in the middle of a random probe through a copy of the codec with random weights and seeing which input
samples (encoder) or code frames (decoder) get a gradient. So it covers any head (conv, vocos, istft blocks),
envelope codebooks, the envelope post-filter and whatever is added later, as long as it stays local. The stream
coders (:mod:`telucodec.coding.streaming`) give each piece this much context."""

from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass

import torch

from telucodec.coding.piece_synthesis import _synthesise, _Totals
from telucodec.errors import TeluCodecError

__all__ = ["Context", "context"]

_PROBE_MAX_FRAMES = 4096


@dataclass(frozen=True)
class Context:
    """What one code frame depends on, measured by :func:`context`.

    ``encoder_left`` / ``encoder_right``: samples before a frame's first / after its last sample that its code
    depends on (``encoder_right`` is the encoder's look-ahead). ``decoder_left`` / ``decoder_right``: code frames
    before / after frame t that the samples of frame t depend on (``decoder_right`` is the decoder's look-ahead);
    ``decoder_margin`` of them (0 or 1 each side) are added for the gain interpolation's drift."""

    hop_length: int
    encoder_left: int
    encoder_right: int
    decoder_left: int
    decoder_right: int
    decoder_margin: int = 0

    @property
    def encoder_left_frames(self) -> int:
        return -(-self.encoder_left // self.hop_length)

    @property
    def lookahead_samples(self) -> int:
        """Encoder look-ahead plus decoder look-ahead, in samples."""
        return self.encoder_right + self.decoder_right * self.hop_length

    @property
    def algorithmic_delay_samples(self) -> int:
        """From a sample entering the encoder to the same sample leaving the decoder, computation aside: one frame
        (for its first sample) plus the look-ahead."""
        return self.hop_length + self.lookahead_samples


_CONTEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def context(codec) -> Context:
    """The receptive field of `codec` (a Codec or CodecModel), measured once and cached."""
    codec = getattr(codec, "codec", codec)
    found = _CONTEXTS.get(codec)
    if found is None:
        found = _CONTEXTS[codec] = _measure_context(codec)
    return found


def _randomised_copy(codec):
    """A float32 copy in eval mode with every parameter random and non-zero (a zero-initialised layer, such as the
    post-filter's last one, would hide a dependency from the gradient)."""
    clone = copy.deepcopy(codec).float().cpu().eval()
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in clone.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(max(1, p[0].numel())))
            else:
                p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=gen))
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _support(grads, axis_len: int) -> tuple:
    """(first, last) index along the last axis where any of `grads` is non-zero."""
    nz = torch.zeros(axis_len, dtype=torch.bool)
    for g in grads:
        if g is not None:
            nz |= g.abs().reshape(-1, g.shape[-1]).sum(0) > 0
    idx = torch.nonzero(nz).flatten()
    if idx.numel() == 0:
        raise TeluCodecError("could not measure the codec's receptive field (no gradient reached the input)")
    return int(idx.min()), int(idx.max())


def _measure_context(codec) -> Context:
    hop = codec.hop_length
    clone = _randomised_copy(codec)
    gen = torch.Generator().manual_seed(99)
    enc = dec = None
    frames = 16
    with torch.enable_grad():
        while enc is None or dec is None:
            if frames > _PROBE_MAX_FRAMES:
                raise TeluCodecError(
                    f"the codec's receptive field is wider than {_PROBE_MAX_FRAMES} frames: it "
                    f"cannot be coded in pieces"
                )
            c = frames // 2
            if enc is None:  # encoder: input samples -> frame c
                x = (0.1 * torch.randn(1, 1, frames * hop, generator=gen)).requires_grad_()
                z = clone.encoder(x)
                if z.shape[-1] != frames:
                    raise TeluCodecError(f"the encoder gives {z.shape[-1]} frames for {frames} x {hop} samples")
                target = (z[..., c] * torch.randn(z.shape[1], generator=gen)).sum()
                if clone.envelope is not None:
                    env = clone.envelope.envelope(x, frames)
                    target = target + (env[..., c] * torch.randn(env.shape[1], generator=gen)).sum()
                lo, hi = _support(torch.autograd.grad(target, x), frames * hop)
                if lo > 0 and hi < frames * hop - 1:
                    enc = (max(0, c * hop - lo), max(0, hi - ((c + 1) * hop - 1)))
            if dec is None:  # decoder: latent/envelope frames -> frame c
                latent = torch.randn(1, codec.config.latent_dim, frames, generator=gen).requires_grad_()
                inputs = [latent]
                envelope = None
                if clone.envelope is not None:
                    with torch.no_grad():
                        raw = clone.decoder(latent)
                        own = clone.envelope._pooled(clone.envelope._stft(raw), frames)[:, clone.envelope.first :]
                    envelope = (own + 0.1 * torch.randn(own.shape, generator=gen)).requires_grad_()
                    inputs.append(envelope)
                y = _synthesise(clone, latent, envelope, 0, None, _Totals(frames, frames * hop))
                if y.shape[-1] != frames * hop:
                    raise TeluCodecError(f"the decoder gives {y.shape[-1]} samples for {frames} frames of {hop}")
                target = (y[0, 0, c * hop : (c + 1) * hop] * torch.randn(hop, generator=gen)).sum()
                lo, hi = _support(torch.autograd.grad(target, inputs, allow_unused=True), frames)
                if lo > 0 and hi < frames - 1:
                    dec = (c - lo, hi - c)
            frames *= 2
    margin = 1 if (codec.envelope is not None or codec.postfilter is not None) else 0
    return Context(hop, enc[0], enc[1], dec[0] + margin, dec[1] + margin, margin)
