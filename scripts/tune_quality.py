"""Quality on the tuning list: every checkpoint or snapshot given, scored at 6 and 3 kbps.

    python scripts/tune_quality.py RUN_DIR/snapshots/*.safetensors --data_root ../shared/data \
        --out results/voices/tune_curve.json

One clip per tune speaker (30), first 8 s, as recorded: PESQ-WB, STOI, SI-SNR and DNSMOS OVRL of the decoded
.tlc round trip (telucodec.evaluation.yardstick), with the step, wall and CPU seconds each snapshot recorded. Choices are
made on these numbers; the test list is never scored here.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--list", default="results/speakers/lists.tsv")
    ap.add_argument("--data_root", default=None)
    ap.add_argument("--clips", type=int, default=30)
    ap.add_argument("--kbps", default="6,3")
    ap.add_argument("--dnsmos", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--table", action="store_true", help="print --out's points as a markdown table, score nothing")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    import telucodec
    from telucodec.coding import checkpoint as ckpt
    from telucodec.evaluation import metrics
    from telucodec.evaluation import yardstick as y

    clips = y.test_clips(args.list, args.data_root, "tune", 1, 8.0)[: args.clips]
    out = Path(args.out)
    points = json.loads(out.read_text()) if out.exists() else []
    done = {p["checkpoint"] for p in points}
    for path in args.checkpoints:
        if path in done:
            continue
        t0 = time.time()
        model = telucodec.load(path)
        meta = {}
        if path.endswith(".safetensors"):
            meta = ckpt.load_weights_safetensors(path)[1]
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            meta = {k: state.get(k) for k in ("step", "train_seconds", "cpu_seconds")}
        point = {
            "checkpoint": path,
            "step": int(meta.get("step") or 0),
            "train_seconds": float(meta.get("train_seconds") or 0),
            "cpu_seconds": float(meta.get("cpu_seconds") or 0),
        }
        for k in (float(v) for v in args.kbps.split(",")):
            rows = []
            for _, x in clips:
                est, bits = y.telucodec_round_trip(model, x, k)
                row = {
                    "pesq_wb": metrics.pesq_wb(x, est),
                    "stoi": metrics.stoi(x, est),
                    "si_snr_db": metrics.si_snr(x, est),
                }
                if args.dnsmos:
                    row["dnsmos_ovrl"] = y.dnsmos_ovrl(est)
                rows.append(row)
            point[f"{k:g}kbps"] = {m: float(np.nanmean([r[m] for r in rows])) for m in rows[0]}
        point["score_seconds"] = time.time() - t0
        points.append(point)
        points.sort(key=lambda p: (p["checkpoint"].rsplit("/", 2)[0], p["step"]))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(points, indent=1) + "\n")
        print(json.dumps(point), file=sys.stderr)


def table(points: list) -> str:
    """One row per scored checkpoint: step, CPU-hours, and each rate's PESQ-WB, STOI, SI-SNR, DNSMOS OVRL."""
    rates = [k for k in points[0] if k.endswith("kbps")]
    head = (
        "| checkpoint | step | CPU-h | "
        + " | ".join(f"{r} PESQ-WB | {r} STOI | {r} SI-SNR (dB) | {r} DNSMOS" for r in rates)
        + " |"
    )
    lines = [head, "|---|---:|---:|" + "---:|" * 4 * len(rates)]
    for p in points:
        cells = []
        for r in rates:
            m = p.get(r, {})
            cells += [
                f"{m.get('pesq_wb', float('nan')):.2f}",
                f"{m.get('stoi', float('nan')):.3f}",
                f"{m.get('si_snr_db', float('nan')):.1f}",
                f"{m.get('dnsmos_ovrl', float('nan')):.2f}",
            ]
        lines.append(f"| {p['checkpoint']} | {p['step']} | {p['cpu_seconds'] / 3600:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
