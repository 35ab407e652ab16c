"""Evaluation during training: the story's diagnostics on fixed validation crops, the means of the loss parts over
an epoch, and the per-epoch line the notebooks print."""

from __future__ import annotations

import numpy as np
import torch

from telucodec.codec.model import Codec
from telucodec.codec.quantizer import codebook_usage
from telucodec.evaluation.metrics import mel_distance, range_ratio, si_snr, snr


@torch.no_grad()
def evaluate(model: Codec, crops: list, n_q: int | None = None, device="cpu") -> dict:
    """The story's diagnostics on fixed validation excerpts: output range, range ratio, SNR, SI-SNR, mel
    distance and codebook usage, averaged over clips (range/ratio over the concatenation)."""
    was_training = model.training
    model.eval()
    sr = model.config.sample_rate
    refs, ests, all_codes = [], [], []
    for crop in crops:
        x = torch.from_numpy(crop)[None, None].to(device)
        out = model(x, n_q=n_q or model.config.n_q)
        ests.append(out["wav"][0, 0].float().cpu().numpy())
        refs.append(crop)
        all_codes.append(out["codes"].cpu().transpose(0, 1).reshape(out["codes"].shape[1], -1).T[None])
    model.train(was_training)
    ref_all, est_all = np.concatenate(refs), np.concatenate(ests)
    codes = torch.cat([c.transpose(1, 2) for c in all_codes], dim=2)  # (1, n_q, frames)
    usage = codebook_usage(codes, model.config.codebook_size)
    dead = [int(stage.dead_codes().sum()) for stage in model.quantizer.stages]
    return {
        "output_min": float(est_all.min()),
        "output_max": float(est_all.max()),
        "range_ratio": range_ratio(ref_all, est_all),
        "snr_db": float(np.mean([snr(r, e) for r, e in zip(refs, ests)])),
        "si_snr_db": float(np.mean([si_snr(r, e) for r, e in zip(refs, ests)])),
        "mel_distance": float(np.mean([mel_distance(r, e, sr) for r, e in zip(refs, ests)])),
        "codebook_usage": float(np.mean(usage["usage"])),
        "perplexity": float(np.mean(usage["perplexity"])),
        "usage_per_stage": usage["usage"],
        "perplexity_per_stage": usage["perplexity"],
        "dead_codes_per_stage": dead,
        "crop": f"middle {len(crops[0]) / sr:g} s" if crops else "none",  # evaluation's crop policy "middle"
    }


def format_epoch(epoch: int, d: dict) -> str:
    """The story's per-epoch diagnostic line."""
    scale = f"{d['output_scale']:.3f}" if d.get("output_scale") is not None else "n/a"
    return (
        f"epoch {epoch:3d} | output range [{d['output_min']:+.3f}, {d['output_max']:+.3f}] | "
        f"range ratio {d['range_ratio']:.3f} | output_scale {scale} | VQ loss {d['vq']:.4f} | "
        f"recon loss {d['recon']:.4f} | SNR {d['snr_db']:+.2f} dB"
    )


class EpochMeans:
    """Means of the loss parts over the steps of one epoch (for the story's per-epoch line)."""

    def __init__(self):
        self.sums, self.n = {"recon": 0.0, "vq": 0.0, "perceptual": 0.0}, 0

    def add(self, record: dict):
        for k in self.sums:
            self.sums[k] += record[k]
        self.n += 1

    def means(self) -> dict:
        return {k: v / max(self.n, 1) for k, v in self.sums.items()}
