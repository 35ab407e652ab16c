"""Envelope codebooks on a trained codec, scored beside Opus (issue 12, session 8).

    python scripts/envelope_codebooks.py --model results/one-speaker/telucodec.safetensors --data_dir <telugu-cv-dev> \
        --save <scratch>/with_envelope.safetensors --out results/cpu/envelope_oracle/codebooks.json

Fits the envelope codebooks (`telucodec.coding.inference.with_envelope`, the split measured in session 8: 3 of 12 codebooks
at 6 kbps, 2 of 6 at 3 kbps, none at 1.5 kbps; the shipped model also gives 1 of 3 to the envelope at 1.5 kbps) on the shipped model's training split (embedded corpus + the folder), then scores the
model with and without them, and Opus 6 and 8 kbps, on the first 10 held-out clips of the folder (first 6 s; the
model card's tuning clips): PESQ-WB, STOI, SI-SNR, mel distance.
"""

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--save", help="also export the model with its envelope codebooks here")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from telucodec.cli import shipped
    from telucodec.coding.inference import export_safetensors, load, with_envelope, without_envelope
    from telucodec.config import preset
    from telucodec.data.folders import load_dataset, spec_for
    from telucodec.evaluation import metrics
    from telucodec.evaluation.baselines import round_trip
    from telucodec.evaluation.scoring import crop_clip

    base = without_envelope(load(args.model))  # the codec as trained; codebooks it already has are refitted
    t0 = time.perf_counter()
    enveloped, report = with_envelope(base, shipped.clips("train", args.data_dir), split=((6, 2), (12, 3)))
    report["fit_seconds"] = time.perf_counter() - t0
    if args.save:
        export_safetensors(enveloped, args.save, {"note": "shipped weights + envelope codebooks"})
    p = preset("cpu")
    clips = list(load_dataset(args.data_dir, spec_for(p.codec, replace(p.train, val_fraction=0.25)), "val"))[:10]
    xs = [crop_clip(c, 16000, "first", 6.0) for c in clips]
    systems = {
        f"{label} {k:g} kbps": (lambda x, m=m, k=k: m.decode(m.encode(x, 16000, k), len(x)))
        for label, m in (("TeluCodec", base), ("TeluCodec + envelope", enveloped))
        for k in (1.5, 3.0, 6.0)
    }
    systems.update(
        {f"Opus {k} kbps": (lambda x, k=k: round_trip(f"opus-{k}", x, 16000).decoded[: len(x)]) for k in (6, 8)}
    )
    rows = {}
    for name, run in systems.items():
        scores = []
        for x in xs:
            y = run(x)
            scores.append(
                {
                    "pesq_wb": metrics.pesq_wb(x, y, 16000),
                    "stoi": metrics.stoi(x, y, 16000),
                    "si_snr_db": metrics.si_snr(x, y),
                    "mel_distance": metrics.mel_distance(x, y, 16000),
                }
            )
        rows[name] = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        print(f"{name:28s} " + "  ".join(f"{k} {v:.3f}" for k, v in rows[name].items()), flush=True)
    result = {
        "model": args.model,
        "fit": report,
        "clips": len(xs),
        "crop": "first 6 s",
        "data": f"{Path(args.data_dir).name}, held-out files (val_fraction 0.25), first 10",
        "systems": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
