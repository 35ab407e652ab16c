"""Draw the book's two diagrams (book/figures/*.svg): the codec's architecture with the place where each of the
story's seven fixes acts, and the working recipe's loss graph.

    python scripts/book_figures.py

Drawn with matplotlib from the configuration (telucodec.config.preset: the strides, widths and stage counts are
read, not typed), so a changed preset redraws the figure. Text stays text in the SVG.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
plt.rcParams["svg.fonttype"] = "none"
plt.rcParams["font.family"] = "DejaVu Sans"

BLUE, GREEN, ORANGE, GREY, RED = "#dbe9f6", "#dff0d8", "#fde9d0", "#eeeeee", "#c0392b"


def box(ax, x, y, w, h, text, colour, size=9, weight="normal"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=colour, ec="#555555"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, weight=weight, wrap=True)


def arrow(ax, a, b, style="-|>", colour="#333333", **kw):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12, color=colour, lw=1.2, **kw))


def fix(ax, x, y, label):
    ax.text(
        x,
        y,
        label,
        ha="center",
        va="center",
        fontsize=8,
        color="white",
        weight="bold",
        bbox=dict(boxstyle="circle,pad=0.25", fc=RED, ec=RED),
    )


def architecture(out: Path):
    from telucodec.config import preset

    codec = preset("cpu").codec
    hop = 1
    for s in codec.strides:
        hop *= s
    rate = codec.sample_rate // hop
    fig, ax = plt.subplots(figsize=(11, 4.6))
    ax.set_xlim(0, 22)
    ax.set_ylim(0, 9.9)
    ax.axis("off")
    box(ax, 0.2, 4.0, 2.0, 1.2, f"waveform\n{codec.sample_rate // 1000} kHz", GREY)
    widths = [codec.channels * 2 ** (i + 1) for i in range(len(codec.strides))]
    x = 2.8
    for s, w in zip(codec.strides, widths):
        box(ax, x, 4.0, 1.05, 1.2, f"block\n÷{s}\n{w} ch", BLUE, size=8)
        x += 1.25
    ax.text(2.8 + 2.4, 5.6, f"encoder: strided convolutions, hop {hop} samples", ha="center", fontsize=9)
    arrow(ax, (2.2, 4.6), (2.8, 4.6))
    box(ax, 7.9, 4.0, 1.8, 1.2, f"latent\n{codec.latent_dim}-d,\n{rate} frames/s", BLUE, size=7.5)
    arrow(ax, (x - 0.2, 4.6), (7.9, 4.6))
    # residual VQ
    ax.add_patch(FancyBboxPatch((10.2, 1.0), 4.2, 7.4, boxstyle="round,pad=0.05", fc="white", ec="#888888", ls="--"))
    ax.text(12.3, 9.55, f"residual VQ: {codec.n_q} stages × {codec.codebook_size} codes", ha="center", fontsize=9)
    ys = [7.2, 5.7, 4.2, 1.6]
    labels = [
        "stage 1: nearest code\nto the latent",
        "stage 2: nearest code\nto what stage 1 left",
        "stage 3 ...",
        f"stage {codec.n_q}",
    ]
    for y, t in zip(ys, labels):
        box(ax, 10.6, y, 3.4, 1.0, t, GREEN, size=8)
    ax.text(12.3, 3.2, "⋮", ha="center", fontsize=14)
    arrow(ax, (9.7, 4.6), (10.6, 7.7))
    for a, b in zip(ys[:-1], ys[1:]):
        if b > 2:
            arrow(ax, (12.3, a), (12.3, b + 1.0))
    box(ax, 14.9, 4.0, 1.8, 1.2, f"codes\n{codec.n_q} × 10 bits\n× {rate}/s", ORANGE, size=7.5)
    arrow(ax, (14.4, 4.6), (14.9, 4.6))
    ax.text(
        15.85,
        3.55,
        f"{codec.n_q * 10 * rate / 1000:g} kbit/s\n(3 or 6 stages:\n1.5 or 3 kbit/s)",
        ha="center",
        va="top",
        fontsize=7.5,
    )
    box(ax, 17.1, 3.8, 2.8, 1.6, "decoder\nstory: conv\nshipped: ConvNeXt\n+ inverse STFT", BLUE, size=7.5)
    arrow(ax, (16.7, 4.6), (17.1, 4.6))
    box(ax, 20.4, 4.0, 1.5, 1.2, "output\nwaveform", GREY, size=8)
    arrow(ax, (19.9, 4.6), (20.4, 4.6))
    # where the fixes act
    fix(ax, 10.6, 8.9, "1")
    ax.text(10.9, 8.9, "codebook loss", fontsize=7.5, va="center")
    fix(ax, 13.3, 8.9, "2")
    ax.text(13.6, 8.9, "STE per step", fontsize=7.5, va="center")
    fix(ax, 10.5, 0.5, "4")
    ax.text(10.8, 0.5, "the stages' VQ losses averaged", fontsize=7.5, va="center")
    fix(ax, 21.0, 5.6, "3")
    ax.text(21.0, 6.0, "learnable scale\nafter tanh", fontsize=7.5, ha="center", va="bottom")
    ax.text(
        19.0, 1.9, "losses on the output:\nunclamped, fp32 perceptual,\nreweighted", fontsize=7.5, ha="center", va="top"
    )
    fix(ax, 18.5, 2.5, "5")
    fix(ax, 19.0, 2.5, "6")
    fix(ax, 19.5, 2.5, "7")
    arrow(ax, (19.0, 2.8), (20.9, 4.0), style="-", colour="#999999")
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def losses(out: Path):
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.set_xlim(0, 20)
    ax.set_ylim(0, 6.8)
    ax.axis("off")
    box(ax, 0.2, 2.9, 2.2, 1.2, "input\nwaveform x", GREY)
    box(ax, 3.0, 2.8, 2.6, 1.4, "codec:\nencoder, RVQ,\ndecoder", BLUE, size=8)
    box(ax, 6.3, 2.9, 2.0, 1.2, "output x̂", GREY)
    arrow(ax, (2.4, 3.5), (3.0, 3.5))
    arrow(ax, (5.6, 3.5), (6.3, 3.5))
    terms = [
        (5.4, "waveform L1\n(below 1 kHz in the\nvoices recipe)"),
        (3.85, "multi-resolution STFT\n(log; a relative floor in\nthe voices recipe)"),
        (2.3, "log-mel distance"),
    ]
    for y, t in terms:
        box(ax, 9.1, y - 0.6, 3.9, 1.2, t, GREEN, size=7.5)
        arrow(ax, (8.3, 3.5), (9.1, y))
    box(
        ax,
        9.1,
        0.2,
        3.9,
        1.2,
        "commitment ‖z − sg(q)‖²,\nweight 1 (EMA codebooks:\nno codebook loss)",
        ORANGE,
        size=7.5,
    )
    arrow(ax, (4.3, 2.8), (9.1, 0.8), connectionstyle="arc3,rad=0.25")
    box(ax, 13.7, 2.3, 2.9, 2.4, "Balancer:\neach term's\ngradient at x̂\ngets a fixed\nshare", BLUE, size=7.5)
    for y, _ in terms:
        arrow(ax, (13.0, y), (13.7, 3.5))
    box(ax, 17.3, 2.8, 2.5, 1.4, "gradient to the\nencoder and\ndecoder", GREY, size=7.5)
    arrow(ax, (16.6, 3.5), (17.3, 3.5))
    arrow(ax, (13.0, 0.8), (17.3, 2.9), connectionstyle="arc3,rad=0.2")
    ax.text(15.0, 6.3, "the working recipe's loss (telucodec.training.losses)", ha="center", fontsize=9.5)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def main():
    out = ROOT / "book" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    architecture(out / "architecture.svg")
    losses(out / "losses.svg")
    print("wrote", *sorted(p.name for p in out.glob("*.svg")))


if __name__ == "__main__":
    main()
