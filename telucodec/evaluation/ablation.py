"""Reading a multi-seed ablation: each configuration's mean and seed-to-seed spread, and whether a difference
between two configurations is larger than that spread.

    from telucodec.evaluation.ablation import load_runs, summarise, compare
    runs = load_runs(RESULTS_DIR / "cpu" / "ablation3000")           # {configuration: {seed: record}}
    summarise(runs, "all", "si_snr_db")                               # mean, min, max, values over seeds
    compare(runs, "all-output_scale", "all", "si_snr_db")             # the difference and its verdict

The rule is deliberately simple, so a reader can check it by eye: a difference is *measurable* when the two
configurations' seed ranges do not overlap (every seed of one is better than every seed of the other). It is not
a strict test: if a change did nothing, two sets of three seeds would still fail to overlap by chance in 2 of the
20 equally likely orderings, one time in ten, so a single "better" among many comparisons is weak evidence, and
a pattern across metrics is stronger. A configuration run with one seed is measurable only when it lies beyond
the reference's seed range by at least the range's own width (a single new seed falls outside the range of three
others half the time by chance alone); its verdict says "(one seed)".
Otherwise the verdict is "no measurable effect", however large the difference of the means looks. With three
seeds each this is the rule the book's verdicts use, one time in ten wrong for a change that did nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# metric -> (label with unit, +1 if higher is better, -1 if lower is better)
METRICS = {
    "snr_db": ("SNR (dB)", +1),
    "si_snr_db": ("SI-SNR (dB)", +1),
    "mel_distance": ("mel distance", -1),
    "pesq_wb": ("PESQ-WB", +1),
    "stoi": ("STOI", +1),
    "robust_range_ratio": ("robust range ratio", 0),  # 1.0 is right: closer to 1 is better
    "range_ratio": ("range ratio (story's)", 0),
}


def load_runs(folder: str | Path, kind: str | None = None) -> dict:
    """{configuration: {seed: record}} from `<folder>/seed<k>[-<kind>]/<configuration>.json` (the layout of the
    committed ablations). `kind` ("nine", "alone") picks one family of seed folders; None reads every one."""
    runs: dict = {}
    for path in sorted(Path(folder).glob("seed*/*.json")):
        seed_dir = path.parent.name
        if kind is not None and not seed_dir.endswith(f"-{kind}"):
            continue
        record = json.loads(path.read_text())
        runs.setdefault(record["name"], {})[int(record["seed"])] = record
    return runs


def value(record: dict, metric: str, kbps: str = "6kbps") -> float:
    return float(record["evaluation"][kbps][metric])


def summarise(runs: dict, name: str, metric: str, kbps: str = "6kbps") -> dict:
    """Mean, min, max and the per-seed values of one metric for one configuration."""
    seeds = sorted(runs[name])
    v = np.array([value(runs[name][s], metric, kbps) for s in seeds])
    return {
        "mean": float(v.mean()),
        "min": float(v.min()),
        "max": float(v.max()),
        "spread": float(v.max() - v.min()),
        "values": v.tolist(),
        "seeds": seeds,
    }


def _goodness(metric: str, v: np.ndarray) -> np.ndarray:
    sign = METRICS.get(metric, ("", +1))[1]
    return -np.abs(np.log(v)) if sign == 0 else sign * v


def compare(runs: dict, name: str, reference: str, metric: str, kbps: str = "6kbps") -> dict:
    """`name` against `reference` on one metric: the difference of the means (name minus reference) and a verdict,
    "better" / "worse" when every seed of one is better than every seed of the other, else "no measurable effect".
    For a range ratio, better means closer to 1 (on a log scale). A configuration run with one seed must lie beyond
    the reference's seed range by the range's width (its verdict says "(one seed)"); a reference with one seed
    gives none."""
    a, b = summarise(runs, name, metric, kbps), summarise(runs, reference, metric, kbps)
    ga, gb = _goodness(metric, np.array(a["values"])), _goodness(metric, np.array(b["values"]))
    if len(gb) < 2:
        verdict = "one seed only: no verdict"
    elif len(ga) == 1:  # one run against the reference's seeds: beyond their range by its width
        margin = gb.max() - gb.min()
        verdict = (
            "better" if ga[0] > gb.max() + margin else "worse" if ga[0] < gb.min() - margin else "no measurable effect"
        ) + " (one seed)"
    elif ga.min() > gb.max():
        verdict = "better"
    elif ga.max() < gb.min():
        verdict = "worse"
    else:
        verdict = "no measurable effect"
    return {"difference": a["mean"] - b["mean"], "verdict": verdict, "name": a, "reference": b}


def effect_rows(
    runs: dict,
    pairs: list,
    metrics=("si_snr_db", "mel_distance", "pesq_wb", "stoi"),
    kbps: str = "6kbps",
    fmt: str = "{:+.2f}",
) -> list:
    """One table row per (label, name, reference): for each metric the difference of the means and its verdict,
    as text ("+0.42 (better)", "-0.05 (no measurable effect)")."""
    rows = []
    for label, name, reference in pairs:
        row = {"comparison": label}
        for m in metrics:
            c = compare(runs, name, reference, m, kbps)
            word = (
                c["verdict"]
                .replace("no measurable effect", "n.s.")
                .replace(" (one seed)", ", 1 seed")
                .replace("one seed only: no verdict", "no verdict: 1 seed")
            )
            row[METRICS[m][0]] = f"{fmt.format(c['difference'])} ({word})"
        rows.append(row)
    return rows


def summary_rows(
    runs: dict,
    names: list,
    metrics=("snr_db", "si_snr_db", "robust_range_ratio", "mel_distance", "pesq_wb", "stoi"),
    kbps: str = "6kbps",
) -> list:
    """One row per configuration: each metric as "mean [min, max]" over seeds, and the number of seeds."""
    rows = []
    for name in names:
        if name not in runs:
            continue
        row = {"configuration": name, "seeds": len(runs[name])}
        for m in metrics:
            if not all(m in r["evaluation"][kbps] for r in runs[name].values()):
                row[METRICS[m][0]] = "-"
                continue
            s = summarise(runs, name, m, kbps)
            row[METRICS[m][0]] = f"{s['mean']:.2f} [{s['min']:.2f}, {s['max']:.2f}]"
        rows.append(row)
    return rows


def plot_errorbars(
    runs: dict,
    names: list,
    metrics=("si_snr_db", "mel_distance", "pesq_wb"),
    kbps: str = "6kbps",
    reference: str | None = None,
    title: str = "",
):
    """Up to three panels: each configuration's mean (dot), its seed range (bar) and every seed (small marks);
    a dashed line at `reference`'s mean."""
    import matplotlib.pyplot as plt

    names = [n for n in names if n in runs]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 0.32 * len(names) + 1.4), sharey=True)
    axes = np.atleast_1d(axes)
    y = np.arange(len(names))[::-1]
    for ax, m in zip(axes, metrics):
        for yi, n in zip(y, names):
            s = summarise(runs, n, m, kbps)
            ax.plot([s["min"], s["max"]], [yi, yi], color="C0", lw=2.5, alpha=0.5)
            ax.plot(s["values"], [yi] * len(s["values"]), "|", color="C0", ms=8)
            ax.plot([s["mean"]], [yi], "o", color="C1" if n == reference else "C0", ms=5)
        if reference in runs:
            ax.axvline(summarise(runs, reference, m, kbps)["mean"], color="C1", ls="--", lw=0.8)
        label, sign = METRICS[m]
        ax.set_xlabel(label + {1: " (higher is better)", -1: " (lower is better)", 0: ""}[sign])
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
