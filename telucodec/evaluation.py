"""One way to score a codec on held-out clips, with the crop policy named in every result.

    from telucodec.evaluation import evaluate_clips
    table = evaluate_clips(model, clips, kbps=(1.5, 3, 6), crop="first", seconds=6.0)

`crop` says which part of each clip is scored: "first" (the first `seconds`), "middle" (the middle `seconds`) or
"whole" (the whole clip). Every returned table carries its policy under "crop", so a number can always be traced
to how it was made.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

CROPS = ("first", "middle", "whole")


def crop_clip(clip: np.ndarray, sample_rate: int, crop: str = "first", seconds: float = 6.0) -> np.ndarray:
    """The scored part of one clip under a crop policy."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, not {crop!r}")
    clip = np.asarray(clip, dtype=np.float32)
    n = int(round(seconds * sample_rate))
    if crop == "whole" or len(clip) <= n:
        return clip
    if crop == "first":
        return clip[:n]
    start = (len(clip) - n) // 2
    return clip[start:start + n]


@torch.no_grad()
def reconstruct(codec, wav: np.ndarray, n_q: int | None = None) -> np.ndarray:
    """Encode and decode one clip with a `Codec` (eval mode, no gradient): float32 numpy out, same length."""
    codec.eval()
    dev = next(codec.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None].to(dev)
    return codec(x, n_q=n_q or codec.config.n_q)["wav"][0, 0].float().cpu().numpy()


def score(ref: np.ndarray, est: np.ndarray, sample_rate: int, perceptual: bool = True, visqol: bool = False) -> dict:
    """SNR, SI-SNR, range ratios, mel distance; PESQ-WB and STOI when `perceptual`; ViSQOL when `visqol`."""
    from . import metrics
    row = metrics.summary(ref, est, sample_rate, perceptual=perceptual)
    if visqol:
        row["visqol"] = metrics.visqol(ref, est, sample_rate)
    return row


def mean_table(rows: list) -> dict:
    """Mean of each metric over clips (NaN-aware), plus the number of clips."""
    keys = rows[0].keys()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    out["clips"] = len(rows)
    return out


def evaluate_clips(codec, clips: list, kbps=(1.5, 3.0, 6.0), crop: str = "first", seconds: float = 6.0,
                   perceptual: bool = True, visqol: bool = False, per_clip: bool = False) -> dict:
    """Score `codec` (a Codec or CodecModel) on clips at each bitrate. Returns
    {"crop": ..., "seconds": ..., "<kbps>kbps": {metric: mean}, ...} (and per-clip rows when `per_clip`)."""
    codec = getattr(codec, "codec", codec)
    sr = codec.config.sample_rate
    out = {"crop": crop, "seconds": seconds if crop != "whole" else None}
    for rate in kbps:
        n_q = codec.config.n_q_for_kbps(rate)
        rows = []
        for clip in clips:
            x = crop_clip(clip, sr, crop, seconds)
            rows.append(score(x, reconstruct(codec, x, n_q), sr, perceptual, visqol))
        key = f"{codec.config.bitrate(n_q) / 1000:g}kbps"
        out[key] = mean_table(rows)
        if per_clip:
            out[key]["per_clip"] = rows
    return out
