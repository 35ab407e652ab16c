"""Two or more checkpoints on the tune list, clip by clip, with paired intervals against the first.

    python scripts/compare_on_tune.py NAME=CHECKPOINT NAME=CHECKPOINT ... --data_root ../shared/data --out OUT.json

One clip per tune speaker (30), first 8 s, as recorded, at 6 kbps (`--kbps`): PESQ-WB, STOI, SI-SNR and DNSMOS OVRL
of the .tlc round trip (telucodec.evaluation.yardstick), and for every checkpoint after the first the paired
clip-level bootstrap against it (telucodec.evaluation.yardstick_report.compare). The test list is never read.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", metavar="NAME=CHECKPOINT")
    ap.add_argument("--list", default="results/speakers/lists.tsv")
    ap.add_argument("--data_root", required=True)
    ap.add_argument("--kbps", type=float, default=6.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    import telucodec
    from telucodec.evaluation import yardstick as y
    from telucodec.evaluation.yardstick_report import compare

    clips = y.test_clips(args.list, args.data_root, "tune", 1, 8.0)
    result = {"list": "tune", "clips": len(clips), "kbps": args.kbps, "models": {}, "paired": {}}
    for spec in args.models:
        name, path = spec.split("=", 1)
        model = telucodec.load(path)
        rows = []
        for clip, x in clips:
            est, _ = y.telucodec_round_trip(model, x, args.kbps)
            rows.append({"clip": clip, **y.score_clip(x, est)})
        result["models"][name] = {"checkpoint": path, "per_clip": rows, "mean": y.summarise(rows)}
        print(name, {k: round(v, 3) for k, v in result["models"][name]["mean"].items()})
    first, *rest = result["models"]
    for name in rest:
        c = compare(result["models"][name]["per_clip"], result["models"][first]["per_clip"])
        result["paired"][f"{name} - {first}"] = c
        print(
            f"{name} - {first}:",
            "; ".join(f"{k} {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] {d['verdict']}" for k, d in c.items()),
        )
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
