"""Plots: training curves of several runs, spectrograms and waveforms, at most three panels a row."""

from __future__ import annotations

import numpy as np
import torch

MAX_PANELS_PER_ROW = 3  # the book's rule: at most three panels a row, legible at the page's content width


def plot_runs(
    runs: dict, keys=("recon", "vq", "grad_norm_encoder"), epoch_keys=("range_ratio", "snr_db"), title: str = ""
):
    """Training curves (per logged step) and validation diagnostics (per epoch) for several labelled runs."""
    import matplotlib.pyplot as plt

    labels_y = {
        "recon": "recon loss (L1+MSE)",
        "vq": "VQ loss",
        "perceptual": "perceptual loss",
        "grad_norm_encoder": "encoder grad norm",
        "grad_norm_z": "|dL/dz|",
        "output_scale": "output scale",
        "range_ratio": "range ratio (out/in)",
        "snr_db": "SNR (dB)",
        "si_snr_db": "SI-SNR (dB)",
        "mel_distance": "mel distance",
        "codebook_usage": "codebook usage (fraction)",
        "output_peak": "output peak",
        "loss": "total loss",
    }
    n = len(keys) + len(epoch_keys)
    cols = min(n, MAX_PANELS_PER_ROW)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.7 * cols, 3.0 * rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, k in zip(axes, keys):
        for label, r in runs.items():
            xs = [h["step"] for h in r.history if h.get(k) is not None]
            ys = [h[k] for h in r.history if h.get(k) is not None]
            ax.plot(xs, ys, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(labels_y.get(k, k))
        if k.startswith("grad") or k in ("vq",):
            ax.set_yscale("log")
    for ax, k in zip(axes[len(keys) :], epoch_keys):
        for label, r in runs.items():
            ax.plot([e["step"] for e in r.epochs], [e[k] for e in r.epochs], marker="o", label=label)
        ax.set_xlabel("step (validation at each epoch end)")
        ax.set_ylabel(labels_y.get(k, k))
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def spectrograms(clips: dict, sample_rate: int = 16000, title: str = ""):
    """Log-magnitude spectrograms side by side (frequency in kHz, time in s, level in dB)."""
    import matplotlib.pyplot as plt

    n = len(clips)
    cols = min(n, MAX_PANELS_PER_ROW)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.2 * rows), sharey=True, constrained_layout=True, squeeze=False
    )
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    axes = axes[:n]
    for ax, (label, wav) in zip(axes, clips.items()):
        x = torch.from_numpy(np.asarray(wav, np.float32))
        spec = torch.stft(x, 512, 128, window=torch.hann_window(512), return_complex=True).abs()
        db = 20 * torch.log10(spec + 1e-5).numpy()
        im = ax.imshow(
            db,
            origin="lower",
            aspect="auto",
            vmin=-80,
            vmax=20,
            extent=[0, len(wav) / sample_rate, 0, sample_rate / 2000],
            cmap="magma",
        )
        ax.set_title(label)
        ax.set_xlabel("time (s)")
    for ax in axes[::cols]:
        ax.set_ylabel("frequency (kHz)")
    fig.colorbar(im, ax=axes.tolist(), label="level (dB)")
    if title:
        fig.suptitle(title)
    plt.show()


def waveforms(clips: dict, sample_rate: int = 16000, title: str = ""):
    """Waveforms overlaid on one axis (amplitude in full-scale units)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 2.8))
    for label, wav in clips.items():
        ax.plot(np.arange(len(wav)) / sample_rate, wav, lw=0.6, label=label, alpha=0.85)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude (full scale = 1)")
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    plt.show()
