"""Tables: a list of rows as a Markdown table, and the committed results the chapters tabulate (the CPU and GPU
ablations, the 3000-step multi-seed ablation)."""

from __future__ import annotations

import json

from telucodec.paths import RESULTS_DIR

GPU_COMMAND = "bash scripts/gpu_run.sh   # one H100, at most 9 minutes"


def table(rows: list, columns: list | None = None, floatfmt: str = "{:.2f}"):
    """Display a list of dicts as a Markdown table (numbers rounded for stable stored outputs)."""
    from IPython.display import Markdown, display

    if not rows:
        print("(no rows: nothing committed for this table yet)")
        return
    columns = columns or list(rows[0])
    fmt = lambda v: floatfmt.format(v) if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    display(Markdown("\n".join(lines)))


CPU_COMMAND = (
    "python -m telucodec experiments --preset ci --device cpu --amp off --steps 300 --parallel 2 "
    "--eval_clips 8 --extra_data_dir <telugu-cv-dev> --out results/cpu"
)


def committed(kind: str = "cpu", name: str = "ablation"):
    """Committed ablation results: kind "cpu" (a 2000-step CPU run of the nine configurations) or "gpu"
    (the H100 run). Returns the parsed JSON, or None after printing where they will come from."""
    path = RESULTS_DIR / kind / f"{name}.json"
    if not path.exists():
        what = {"gpu": f"one H100 run of: {GPU_COMMAND}", "cpu": f"a CPU run of: {CPU_COMMAND}"}[kind]
        print(
            f"{kind.upper()} ablation results are not committed yet (expected at results/{kind}/{name}.json).\n"
            f"They come from {what}\nNothing here is extrapolated from another run."
        )
        return None
    return json.loads(path.read_text())


def ablation_rows(results: dict, names=None, kbps: str = "6kbps") -> list:
    """Rows (one per configuration) of the committed ablation at one bitrate, for tb.table."""
    rows = []
    for name in names or results["runs"]:
        run = results["runs"].get(name)
        if run is None:
            continue
        ev = run["evaluation"][kbps]
        rows.append(
            {
                "configuration": name,
                "SNR (dB)": ev["snr_db"],
                "SI-SNR (dB)": ev["si_snr_db"],
                "range ratio": ev["range_ratio"],
                "mel distance": ev["mel_distance"],
                "PESQ-WB": ev.get("pesq_wb") if ev.get("pesq_wb") is not None else float("nan"),
                "STOI": ev.get("stoi") if ev.get("stoi") is not None else float("nan"),
            }
        )
    return rows


ABLATION3000 = "cpu/ablation3000"
FIXES600 = "cpu/fixes600"
# fixes 5-7 change only the story's loss; the working recipe trains with its own (tests/test_recipe.py)
STORY_LOSS_ONLY = ("unclamped_losses", "fp32_perceptual", "reweighted_losses")


def longer_runs(fix: str, metrics=("snr_db", "si_snr_db", "robust_range_ratio", "mel_distance", "pesq_wb", "stoi")):
    """The "longer runs" cell of chapters 04-10: the committed 3000-step, multi-seed ablation
    (results/cpu/ablation3000) for `none`, `all` and `all` minus `fix`, each metric as mean [min, max] over seeds,
    then the effect of leaving the fix out of `all` (and of adding it alone to `none`, once those runs are
    committed) with the verdict of telucodec.evaluation.ablation.compare: a difference counts only when the seed ranges do
    not overlap. Returns the runs it read."""
    from telucodec.evaluation.ablation import effect_rows, load_runs, summary_rows

    folder = RESULTS_DIR / ABLATION3000
    nine, alone = load_runs(folder, "nine"), load_runs(folder, "alone")
    if not nine:
        print(f"the 3000-step ablation is not committed yet ({folder})")
        return {}
    steps = sorted({r["steps"] for seeds in nine.values() for r in seeds.values()})
    print(
        f"3000-step ablation ({', '.join(map(str, steps))} steps per run), 6 kbps, held-out clips; "
        f"mean [min, max] over seeds"
    )
    table(summary_rows(nine, ["none", "all", f"all-{fix}"], metrics=metrics))
    runs = {**nine, **alone}
    pairs = [(f"all without {fix}, against all", f"all-{fix}", "all")]
    if fix in alone:
        pairs.append((f"{fix} alone, against none", fix, "none"))
    table(effect_rows(runs, pairs, metrics=[m for m in metrics if m not in ("range_ratio", "snr_db")]))
    return runs


def in_a_codec_that_learns(
    fix: str, metrics=("si_snr_db", "snr_db", "robust_range_ratio", "mel_distance", "pesq_wb", "stoi")
):
    """The fix inside a codec that learns: the working recipe of chapter 14 with and without it
    (results/cpu/fixes600: 600 steps, the ci network, three seeds each, one machine), as mean [min, max] over seeds
    and the difference with the non-overlap verdict. Fixes 5-7 act only on the story's loss, which the working
    recipe replaces: for them it says so and returns {}."""
    from telucodec.evaluation.ablation import effect_rows, load_runs, summary_rows

    if fix in STORY_LOSS_ONLY:
        print(
            f"in a codec that learns: {fix} changes only the story's loss, which the working recipe replaces; "
            "turning it off there leaves every weight bit-identical (tests/test_recipe.py), so this recipe "
            "cannot test it"
        )
        return {}
    runs = load_runs(RESULTS_DIR / FIXES600)
    name = f"working-{fix}"
    if name not in runs or "working" not in runs:
        print(f"the working recipe's fix ablation is not committed yet ({RESULTS_DIR / FIXES600})")
        return {}
    seeds = min(len(runs[name]), len(runs["working"]))
    steps = sorted({r["steps"] for n in ("working", name) for r in runs[n].values()})
    print(
        f"in a codec that learns: the working recipe with and without {fix}, {', '.join(map(str, steps))} steps, "
        f"{seeds} seeds each, 6 kbps, 16 held-out clips; mean [min, max] over seeds"
    )
    table(summary_rows(runs, ["working", name], metrics=metrics))
    table(effect_rows(runs, [(f"working without {fix}, against working", name, "working")], metrics=metrics))
    return runs
