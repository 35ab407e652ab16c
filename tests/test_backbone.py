"""The frame-rate blocks (telucodec.codec.backbone): an inverse STFT that inverts, shapes that line up, gradients that flow."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from telucodec import Codec, Fixes
from telucodec.codec.backbone import ConvNeXtBlock, FrameBackbone, ISTFTHead
from telucodec.config import preset


def _stft_same(x: torch.Tensor, head: ISTFTHead) -> torch.Tensor:
    """The forward transform the head's "same" padding inverts: pad (n_fft - hop) / 2 each side, no centring."""
    pad = (head.n_fft - head.hop) // 2
    xp = F.pad(x, (pad, pad))
    return torch.stft(
        xp, head.n_fft, head.hop, window=torch.hann_window(head.n_fft), center=False, return_complex=True
    ).transpose(1, 2)  # (B, frames, bins)


@pytest.mark.parametrize("hop_length, upsample", [(320, 2), (320, 4), (160, 1)])
def test_istft_inverts_the_matching_stft_at_every_sample(hop_length, upsample):
    head = ISTFTHead(8, hop_length, upsample)
    torch.manual_seed(0)
    frames = 7
    x = torch.randn(2, frames * hop_length)
    spec = _stft_same(x, head)
    assert spec.shape[1] == frames * upsample  # exactly `upsample` per codec frame
    y = head.istft(spec)
    assert y.shape == x.shape
    assert torch.allclose(y, x, atol=1e-5), (y - x).abs().max()  # the edges too: no window is missing


def test_istft_head_output_is_bounded_and_sized():
    head = ISTFTHead(16, 320, 2)
    with torch.no_grad():
        head.out.bias.fill_(100.0)  # a runaway log magnitude...
        y = head(torch.randn(1, 16, 5))
    assert y.shape == (1, 1, 5 * 320) and torch.isfinite(y).all()
    assert y.abs().max() < 2 * torch.e**6  # ...is clamped at e^6 per bin


def test_istft_head_rejects_a_hop_it_cannot_split():
    with pytest.raises(ValueError, match="multiple of head_upsample"):
        ISTFTHead(8, 330, 4)


def test_convnext_block_starts_near_identity_and_keeps_shape():
    torch.manual_seed(0)
    block = ConvNeXtBlock(32, layer_scale=1e-6)
    x = torch.randn(3, 32, 11)
    y = block(x)
    assert y.shape == x.shape and torch.allclose(y, x, atol=1e-3)


def test_decoder_backbone_sees_the_latent_scale():
    """The decoder's backbone has no layer norm on its input: a latent 10x smaller gives another output (an
    encoder-style backbone, normalised on input, cannot tell them apart)."""
    torch.manual_seed(0)
    z = torch.randn(1, 8, 20)
    dec = FrameBackbone(8, 32, 2, norm_in=False)
    enc = FrameBackbone(8, 32, 2, norm_in=True)
    with torch.no_grad():
        dec.embed.bias.zero_(), enc.embed.bias.zero_()
        assert not torch.allclose(dec(z), dec(0.1 * z), atol=1e-3)
        assert torch.allclose(enc(z), enc(0.1 * z), atol=1e-3)


def test_codec_with_vocos_head_and_encoder_tail_round_trips_shapes_and_gradients():
    cfg = replace(preset("cpu").codec, head="vocos", head_dim=32, head_layers=2, encoder_layers=2, encoder_dim=32)
    torch.manual_seed(0)
    codec = Codec(cfg, Fixes.all().with_(output_scale=False))
    x = (0.1 * torch.randn(2, 1, 4 * cfg.hop_length)).requires_grad_()
    out = codec(x)
    y = out["wav"]
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the encoder gets a gradient
    assert isinstance(codec.decoder.body[1], ISTFTHead)
    assert sum(isinstance(m, FrameBackbone) for m in codec.encoder.modules()) == 1
