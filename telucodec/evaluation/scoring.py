"""One way to score a codec on held-out clips, with the crop policy named in every result.

    from telucodec.evaluation.scoring import evaluate_clips
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
    return clip[start : start + n]


@torch.no_grad()
def reconstruct(codec, wav: np.ndarray, n_q: int | None = None) -> np.ndarray:
    """Encode and decode one clip with a `Codec` (eval mode, no gradient): float32 numpy out, same length."""
    codec.eval()
    dev = next(codec.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, None].to(dev)
    return codec(x, n_q=n_q or codec.config.n_q)["wav"][0, 0].float().cpu().numpy()


def score(ref: np.ndarray, est: np.ndarray, sample_rate: int, perceptual: bool = True, visqol: bool = False) -> dict:
    """SNR, SI-SNR, range ratios, mel distance; PESQ-WB and STOI when `perceptual`; ViSQOL when `visqol`."""
    from telucodec.evaluation import metrics

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


HIGHER_IS_BETTER = {
    "pesq_wb": True,
    "stoi": True,
    "visqol": True,
    "si_snr_db": True,
    "snr_db": True,
    "dnsmos_ovrl": True,
    "mel_distance_4k": False,
    "mel_distance": False,
}


def paired_difference(ours: list, theirs: list, key: str, resamples: int = 10000, seed: int = 0) -> dict:
    """Two systems scored on the same clips (lists of per-clip score dicts with a "clip" name, as `bench quality`
    writes them under "per_clip"), compared clip by clip on one metric. The difference is signed so that
    positive means `ours` is better (for mel distance: theirs minus ours). Returns {"mean", "low", "high" (a
    bootstrap 95 % interval of the mean difference), "wins", "clips"}: a verdict needs the interval to exclude 0."""
    if key not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {key!r}; known: {', '.join(HIGHER_IS_BETTER)}")
    sign = 1.0 if HIGHER_IS_BETTER[key] else -1.0
    a = {c["clip"]: c.get(key) for c in ours}
    pairs = [(a[c["clip"]], c.get(key)) for c in theirs if a.get(c["clip"]) is not None and c.get(key) is not None]
    if len(pairs) < 2:
        raise ValueError(f"{len(pairs)} clips scored by both systems on {key}; need at least 2")
    d = sign * np.array([x - y for x, y in pairs], dtype=float)
    return {**bootstrap_interval(d, resamples, seed), "wins": int((d > 0).sum()), "clips": len(d)}


def bootstrap_interval(d, resamples: int = 10000, seed: int = 0) -> dict:
    """The mean of per-clip differences `d` and a bootstrap 95 % interval of it: {"mean", "low", "high"}."""
    d = np.asarray(d, dtype=float)
    boot = np.random.default_rng(seed).choice(d, (resamples, len(d))).mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"mean": float(d.mean()), "low": float(low), "high": float(high)}


def evaluate_clips(
    codec,
    clips: list,
    kbps=(1.5, 3.0, 6.0),
    crop: str = "first",
    seconds: float = 6.0,
    perceptual: bool = True,
    visqol: bool = False,
    per_clip: bool = False,
) -> dict:
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
