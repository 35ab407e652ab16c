"""Validation quality against training minutes, from the weights snapshots a run kept (--keep_every).

    python scripts/quality_curve.py CHECKPOINT_DIR/shipped --data_dir <telugu-cv-dev> --out results/one-speaker

Scores every snapshot at 6 kbps on the held-out files of --data_dir (the split the run was trained with,
--val_fraction) with SI-SNR, mel distance, PESQ-WB and STOI (first --seconds of each clip), and writes
quality_curve.json and quality_curve.png. Opus 6 and 8 kbps on the same clips are drawn as reference lines.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--data_dir")
    ap.add_argument(
        "--append",
        nargs=2,
        metavar=("BASE_JSON", "NEXT_JSON"),
        help="join two curves: NEXT (a fine-tune of BASE's last snapshot) continues BASE in steps and "
        "minutes; written to --out",
    )
    ap.add_argument("--base_step", type=int, help="with --append: the step NEXT started from (default: BASE's last)")
    ap.add_argument("--base_minutes", type=float, help="with --append: BASE's training minutes at that step")
    ap.add_argument("--val_fraction", type=float, default=0.25)
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", default="results/one-speaker")
    args = ap.parse_args(argv)
    if args.append:
        return append(*args.append, out=Path(args.out), base_step=args.base_step, base_minutes=args.base_minutes)
    if not (args.run_dir and args.data_dir):
        ap.error("give a run folder and --data_dir (or --append BASE NEXT)")
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    from dataclasses import replace

    from telucodec.coding import checkpoint as ckpt
    from telucodec.coding.inference import load
    from telucodec.config import preset
    from telucodec.data.folders import load_dataset, spec_for
    from telucodec.evaluation import baselines as B
    from telucodec.evaluation.scoring import crop_clip, evaluate_clips, mean_table, score

    p = preset("cpu")
    spec = spec_for(p.codec, replace(p.train, val_fraction=args.val_fraction))
    clips = list(load_dataset(args.data_dir, spec, "val"))[: args.clips]
    refs = {}
    for key in ("opus-6", "opus-8"):
        rows = []
        for c in clips:
            x = crop_clip(c, 16000, "first", args.seconds)
            rows.append(score(x, B.round_trip(key, x, 16000).decoded, 16000))
        refs[key] = mean_table(rows)
    points = []
    for snap in sorted((Path(args.run_dir) / "snapshots").glob("step_*.safetensors")):
        _, meta = ckpt.load_weights_safetensors(snap)
        table = evaluate_clips(load(snap), clips, kbps=(6.0,), crop="first", seconds=args.seconds)
        points.append({"step": int(meta["step"]), "minutes": float(meta["train_seconds"]) / 60, **table["6kbps"]})
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in points[-1].items()}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "run": str(Path(args.run_dir).name),
        "clips": len(clips),
        "crop": "first",
        "seconds": args.seconds,
        "data": f"{Path(args.data_dir).name}, held-out files (val_fraction {args.val_fraction})",
        "bitrate": "6 kbps",
        "points": points,
        "references": refs,
    }
    (out / "quality_curve.json").write_text(json.dumps(result, indent=1))
    plot(result, out)


def append(base_path, next_path, out: Path, base_step=None, base_minutes=None):
    base, nxt = json.loads(Path(base_path).read_text()), json.loads(Path(next_path).read_text())
    if (base["clips"], base["seconds"], base["data"]) != (nxt["clips"], nxt["seconds"], nxt["data"]):
        raise SystemExit("the two curves were scored on different clips")
    step0 = base_step if base_step is not None else base["points"][-1]["step"]
    minutes0 = base_minutes if base_minutes is not None else base["points"][-1]["minutes"]
    points = [p for p in base["points"] if p.get("phase", 1) == 1] + [
        {**p, "step": step0 + p["step"], "minutes": minutes0 + p["minutes"], "phase": 2} for p in nxt["points"]
    ]
    result = {
        **base,
        "run": f"{base['run']} + {nxt['run']}",
        "points": [{**p, "phase": p.get("phase", 1)} for p in points],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_curve.json").write_text(json.dumps(result, indent=1))
    plot(result, out)


def plot(result: dict, out: Path):
    points, refs = result["points"], result["references"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, label in zip(axes, ("pesq_wb", "stoi", "si_snr_db"), ("PESQ-WB", "STOI", "SI-SNR (dB)")):
        ax.plot([q["minutes"] for q in points], [q[key] for q in points], marker="o", label="TeluCodec 6 kbps")
        for ref, style in (("opus-6", ":"), ("opus-8", "--")):
            ax.axhline(refs[ref][key], color="gray", ls=style, label=ref.replace("opus-", "Opus ") + " kbps")
        ax.set_xlabel("training time (minutes, one CPU thread)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Held-out quality during training ({result['clips']} clips, first {result['seconds']:g} s)")
    fig.tight_layout()
    fig.savefig(out / "quality_curve.png", dpi=90)


if __name__ == "__main__":
    main()
