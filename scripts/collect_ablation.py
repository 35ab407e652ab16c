"""Copy the finished runs of a multi-seed ablation (written by `python -m telucodec experiments`) into results/,
one JSON per run (evaluation, diagnostics, epochs; the per-step history stays with the checkpoints), add the
robust range ratio (telucodec.evaluation.metrics.robust_range_ratio) at every bitrate, measured on the run's own final
checkpoint and the same held-out clips as its evaluation, and write summary.json (what is done so far);
with --samples, copy seed 0's first held-out sample of every run (6 kbps, and the original) beside them.

    python scripts/collect_ablation.py --runs /work/ckpt/ablation3000 --out results/cpu/ablation3000 \
        --extra_data_dir ../shared/data/telugu-cv-dev

Only finished runs are copied (a result.json exists, written after the last step); nothing is extrapolated.
A run already collected at the same step count is not measured again.
"""

from __future__ import annotations

import argparse
import functools
import json
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

import numpy as np

KEEP = (
    "name",
    "seed",
    "fixes",
    "enabled",
    "preset",
    "recipe",
    "ingredients",
    "steps",
    "seconds",
    "evaluation",
    "diagnostics",
    "epochs",
    "train_clips",
    "val_clips",
    "train_minutes",
)


@functools.cache
def _val_clips(preset: str, seed: int, extra_data_dir: str | None, eval_clips: int) -> tuple:
    """The evaluation's held-out clips, loaded once per (preset, seed) for every run that shares them."""
    from telucodec.config import preset as get_preset
    from telucodec.training.experiments import _clips

    p = get_preset(preset)
    args = Namespace(corpus_dir=None, extra_data_dir=extra_data_dir)
    return tuple(_clips(args, p.codec, replace(p.train, seed=seed), "val")[:eval_clips])


def robust_ranges(run_dir: Path, record: dict, extra_data_dir: str | None, eval_clips: int, seconds: float) -> dict:
    from telucodec.coding.inference import load
    from telucodec.evaluation.metrics import robust_range_ratio
    from telucodec.evaluation.scoring import crop_clip, reconstruct

    clips = _val_clips(record["preset"], int(record["seed"]), extra_data_dir, eval_clips)
    codec = load(run_dir / "checkpoints").codec
    sr = codec.config.sample_rate
    out = {}
    for key in record["evaluation"]:
        n_q = codec.config.n_q_for_kbps(float(key.replace("kbps", "")))
        vals = [
            robust_range_ratio(x, reconstruct(codec, x, n_q), sr)
            for x in (crop_clip(c, sr, "first", seconds) for c in clips)
        ]
        out[key] = float(np.mean(vals))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="the experiments output folders' parent (seed*/runs/*/result.json)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--extra_data_dir", default=None, help="the same --extra_data_dir the runs trained with")
    ap.add_argument("--eval_clips", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4.0, help="the evaluation's crop (experiments: first 4 s)")
    ap.add_argument(
        "--samples",
        action="store_true",
        help="also copy seed 0's first held-out sample (original and 6 kbps) of every run to <out>/samples",
    )
    args = ap.parse_args(argv)
    src, out = Path(args.runs), Path(args.out)
    summary: dict = {}
    for f in sorted(src.glob("seed*/runs/*/result.json")):
        d = json.loads(f.read_text())
        folder = f.parent.parent.parent.name
        target = out / folder / f"{d['name']}.json"
        keep = {k: d[k] for k in KEEP if k in d}
        keep["seed"] = d.get("seed", int(folder[4]))
        old = json.loads(target.read_text()) if target.exists() else {}
        if old.get("steps") == d["steps"] and all("robust_range_ratio" in v for v in old["evaluation"].values()):
            ranges = {k: v["robust_range_ratio"] for k, v in old["evaluation"].items()}
        else:
            ranges = robust_ranges(f.parent, keep, args.extra_data_dir, args.eval_clips, args.seconds)
        for k, v in ranges.items():
            keep["evaluation"][k]["robust_range_ratio"] = v
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(keep, indent=1))
        summary.setdefault(folder, {})[d["name"]] = {"steps": d["steps"], "6kbps": keep["evaluation"]["6kbps"]}
        if args.samples and keep["seed"] == 0:
            import shutil

            (out / "samples").mkdir(parents=True, exist_ok=True)
            for src_name, dst_name in (("sample0_6kbps", d["name"]), ("sample0_original", "original")):
                for found in f.parent.glob(f"{src_name}.*"):
                    shutil.copyfile(found, out / "samples" / f"{dst_name}{found.suffix}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    print({k: sorted(v) for k, v in summary.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
