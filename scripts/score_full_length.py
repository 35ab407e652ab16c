"""Chapter 14's full-length check of the relative floor: two trained models scored side by side at 6 kbps on the
first 10 held-out real clips (first 6 s; the model card's tuning clips) of the shipped model's split.

    python scripts/score_full_length.py --models relative_floor=<run folder> shipped=results/pretrained/telucodec.safetensors \
        --data_dir <telugu-cv-dev> --out results/cpu/relative_floor6000/comparison.json

Per model: SI-SNR, SNR, mel distance, PESQ-WB, STOI, `mel_distance_active`, `band_level_error` per band, and PESQ-WB
and mel distance again with the decoded pauses replaced by the input's (the frames more than 50 dB under the
loudest): how much of each score the pauses decide; and the 1-4 kHz level error binned by the input's loudness in
that band (`band_level_by_loudness`, over all 10 clips at once), with `--opus` for Opus 6 kbps as well.
"""

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def gate_pauses(x, y, quiet_db: float = 50.0, frame: int = 160):
    """`y` with the frames where `x` is more than `quiet_db` under its loudest frame replaced by `x`."""
    import numpy as np

    n = len(x) // frame * frame
    energy = 10 * np.log10((x[:n].reshape(-1, frame) ** 2).mean(axis=1) + 1e-20)
    quiet = np.repeat(energy < energy.max() - quiet_db, frame)
    out = y.copy()
    out[:n][quiet] = x[:n][quiet]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="label=checkpoint (folder or .safetensors)")
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--opus", action="store_true", help="also Opus 6 kbps's band levels on the same clips")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from telucodec.coding.inference import load
    from telucodec.config import preset
    from telucodec.data.folders import load_dataset, spec_for
    from telucodec.evaluation.metrics import (
        band_level_by_loudness,
        band_level_error,
        mel_distance,
        mel_distance_active,
        pesq_wb,
    )
    from telucodec.evaluation.scoring import crop_clip, evaluate_clips, reconstruct

    p = preset("cpu")
    clips = list(load_dataset(args.data_dir, spec_for(p.codec, replace(p.train, val_fraction=0.25)), "val"))[:10]
    result = {
        "clips": len(clips),
        "crop": "first 6 s",
        "bitrate": "6 kbps",
        "data": f"{Path(args.data_dir).name}, held-out files (val_fraction 0.25), first 10",
        "models": {},
    }
    for spec in args.models:
        label, path = spec.split("=", 1)
        model = load(path)
        table = evaluate_clips(model, clips, kbps=(6.0,), crop="first", seconds=6.0)["6kbps"]
        rows, xs, ys = [], [], []
        for c in clips:
            x = crop_clip(c, 16000, "first", 6.0)
            y = reconstruct(model.codec, x, model.codec.config.n_q)
            xs.append(x), ys.append(y[: len(x)])
            g = gate_pauses(x, y)
            rows.append(
                {
                    "bands": band_level_error(x, y),
                    "mel_active": mel_distance_active(x, y),
                    "pesq_gated": pesq_wb(x, g),
                    "mel_gated": mel_distance(x, g),
                }
            )
        table["band_level_db"] = {b: float(np.mean([r["bands"][b] for r in rows])) for b in rows[0]["bands"]}
        for k in ("mel_active", "pesq_gated", "mel_gated"):
            table[k] = float(np.mean([r[k] for r in rows]))
        table["band_1_4_khz_by_loudness"] = band_level_by_loudness(np.concatenate(xs), np.concatenate(ys))
        result["models"][label] = {"checkpoint": path, **table}
        print(label, json.dumps({k: v for k, v in table.items() if k != "band_level_db"}), flush=True)
    if args.opus:  # the reference codec's band levels, on the same clips
        from telucodec.evaluation.baselines import round_trip

        xs = [crop_clip(c, 16000, "first", 6.0) for c in clips]
        ys = [round_trip("opus-6", x, 16000).decoded[: len(x)] for x in xs]
        result["opus-6"] = {
            "band_level_db": {
                b: float(np.mean([band_level_error(x, y)[b] for x, y in zip(xs, ys)]))
                for b in band_level_error(xs[0], ys[0])
            },
            "band_1_4_khz_by_loudness": band_level_by_loudness(np.concatenate(xs), np.concatenate(ys)),
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
