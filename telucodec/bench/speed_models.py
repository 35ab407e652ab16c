"""The models the speed benchmark times: TeluCodec (a checkpoint's, or a preset's architecture with random weights)
and EnCodec's 24 kHz architecture, behind one encode / decode / training-step interface."""

from __future__ import annotations

import warnings


def telucodec_codec(checkpoint, preset_name):
    """(nn.Module Codec, description). Speed depends on the architecture only, so untrained is fine."""
    if checkpoint is not None:
        import telucodec

        model = telucodec.load(checkpoint)
        return model.codec, f"TeluCodec from {checkpoint}"
    import torch

    from telucodec.codec.model import Codec
    from telucodec.config import preset as _preset
    from telucodec.fixes import Fixes

    torch.manual_seed(0)
    return Codec(_preset(preset_name).codec, Fixes.all()), f"TeluCodec '{preset_name}' architecture (random weights)"


def encodec_model():
    try:
        from encodec import EncodecModel
    except ImportError as exc:
        return None, f"encodec not installed ({exc}); pip install encodec to compare"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EncodecModel.encodec_model_24khz(pretrained=False)
    model.set_target_bandwidth(6.0)
    # EnCodec runs k-means on the first training batch to initialise its codebooks: a one-off cost that a
    # warm-up step would absorb anyway, and slow on CPU. Mark the codebooks initialised instead.
    for layer in model.quantizer.vq.layers:
        if hasattr(layer._codebook, "inited"):
            layer._codebook.inited.fill_(1.0)
    return model, (
        "EnCodec 24 kHz architecture, random weights (pretrained=False), target 6 kbps "
        "(8 codebooks); one-off k-means codebook init skipped"
    )


class Runner:
    """Uniform encode / decode / train-step interface over TeluCodec and EnCodec modules."""

    def __init__(self, kind: str, module, n_q=None):
        self.kind, self.module, self.n_q = kind, module, n_q
        if kind == "telucodec":
            self.sample_rate = module.config.sample_rate
        else:
            self.sample_rate = module.sample_rate

    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def bitrate(self) -> float:
        if self.kind == "telucodec":
            return self.module.bitrate(self.n_q)
        return self.module.bandwidth * 1000

    def encode(self, wav):
        if self.kind == "telucodec":
            return self.module.encode_tensor(wav, self.n_q)
        return self.module.encode(wav)

    def decode(self, codes, length):
        if self.kind == "telucodec":
            return self.module.decode_tensor(codes, length)
        return self.module.decode(codes)[..., :length]

    def train_loss(self, wav):
        """Generator training objective, identical for both: TeluCodec's total_loss (L1+MSE, multi-res
        log-mel, VQ loss; all fixes on) applied to each model's own output and VQ penalty."""
        from telucodec.fixes import Fixes
        from telucodec.training.losses import total_loss

        if self.kind == "telucodec":
            out = self.module(wav, n_q=self.module.config.n_q)
            est, vq = out["wav"], out["vq_loss"]
        else:
            m = self.module
            emb = m.encoder(wav)
            q = m.quantizer(emb, m.frame_rate, m.bandwidth)
            est = m.decoder(q.quantized)[..., : wav.shape[-1]]
            vq = q.penalty
        return total_loss(est, wav, vq, self.sample_rate, Fixes.all())["total"]
