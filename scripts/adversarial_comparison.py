"""Adversarial fine-tune against reconstruction only, on the same held-out clips, side by side in one run.

    python scripts/adversarial_comparison.py --data_dir <telugu-cv-dev> --out results/adversarial \
        shipped=results/one-speaker/telucodec.safetensors \
        reconstruction=CHECKPOINT_DIR/reconstruction adversarial=CHECKPOINT_DIR/adversarial

Scores each codec at 3 and 6 kbps, and Opus 6 and 8 kbps, on the held-out files of --data_dir (the split the runs
trained with, --val_fraction), first --seconds of each clip: PESQ-WB, STOI, ViSQOL (speech mode), SI-SNR, mel
distance. Writes comparison.json (means, per-clip rows, and paired differences against the first codec named
after `--against` with a 95 % bootstrap interval over clips) and comparison.md.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
METRICS = ("pesq_wb", "stoi", "visqol", "si_snr_db", "mel_distance")
NAMES = {
    "pesq_wb": "PESQ-WB ↑",
    "stoi": "STOI ↑",
    "visqol": "ViSQOL ↑",
    "si_snr_db": "SI-SNR (dB) ↑",
    "mel_distance": "mel distance ↓",
}


def paired(a: list, b: list, key: str, seed: int = 0) -> dict:
    """Mean of b - a over clips and a 95 % bootstrap interval (10000 resamples of the clips)."""
    d = np.array([y[key] - x[key] for x, y in zip(a, b)], dtype=float)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), (10000, len(d)))].mean(axis=1)
    return {
        "mean": float(d.mean()),
        "low": float(np.percentile(boots, 2.5)),
        "high": float(np.percentile(boots, 97.5)),
        "better_on_clips": int((d < 0).sum() if key == "mel_distance" else (d > 0).sum()),
        "clips": len(d),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("codecs", nargs="+", help="name=path (a .safetensors, .pt or run folder)")
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--val_fraction", type=float, default=0.25)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--against", default="reconstruction", help="the codec the differences are taken against")
    ap.add_argument("--out", default="results/adversarial")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    from dataclasses import replace

    from telucodec.bench.common import machine_info
    from telucodec.coding.inference import load
    from telucodec.config import preset
    from telucodec.data.folders import load_dataset, spec_for
    from telucodec.evaluation import baselines as B
    from telucodec.evaluation.scoring import crop_clip, mean_table, reconstruct, score

    p = preset("cpu")
    spec = spec_for(p.codec, replace(p.train, val_fraction=args.val_fraction))
    clips = [crop_clip(c, 16000, "first", args.seconds) for c in load_dataset(args.data_dir, spec, "val")]
    systems = {}
    for item in args.codecs:
        name, path = item.split("=", 1)
        codec = load(path).codec
        for kbps in (3.0, 6.0):
            n_q = codec.config.n_q_for_kbps(kbps)
            rows = [score(x, reconstruct(codec, x, n_q), 16000, visqol=True) for x in clips]
            systems[f"{name} {kbps:g} kbps"] = {"source": path, "rows": rows, **mean_table(rows)}
            print(name, kbps, {k: round(systems[f"{name} {kbps:g} kbps"][k], 3) for k in METRICS}, flush=True)
    for key, label in (("opus-6", "Opus 6 kbps"), ("opus-8", "Opus 8 kbps")):
        rows = [score(x, B.round_trip(key, x, 16000).decoded, 16000, visqol=True) for x in clips]
        systems[label] = {"rows": rows, **mean_table(rows)}
    differences = {}
    for kbps in ("3 kbps", "6 kbps"):
        base = systems.get(f"{args.against} {kbps}")
        if base is None:
            continue
        for name in list(systems):
            if name.endswith(kbps) and not name.startswith(args.against):
                differences[f"{name} - {args.against} {kbps}"] = {
                    k: paired(base["rows"], systems[name]["rows"], k) for k in METRICS
                }
    result = {
        "data": f"{Path(args.data_dir).name}, held-out files (val_fraction {args.val_fraction})",
        "clips": len(clips),
        "crop": "first",
        "seconds": args.seconds,
        "machine": machine_info()["cpu"],
        "systems": systems,
        "differences": differences,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(result, indent=1))
    lines = [
        f"Held-out clips: {result['data']}; {len(clips)} clips, first {args.seconds:g} s of each.",
        "",
        "| system | " + " | ".join(NAMES[k] for k in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for name, s in systems.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{s[k]:.3f}" if k == "stoi" else f"{s[k]:.2f}" for k in METRICS) + " |"
        )
    lines += [
        "",
        "Paired differences over clips (mean, 95 % bootstrap interval):",
        "",
        "| comparison | " + " | ".join(NAMES[k] for k in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for name, d in differences.items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{d[k]['mean']:+.3f} [{d[k]['low']:+.3f}, {d[k]['high']:+.3f}]" for k in METRICS)
            + " |"
        )
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
