"""Score the relative-floor experiment of chapter 14: pairs of `cpu`-preset working-recipe runs, trained the same
steps with the same seed, with and without `--with relative_floor`.

    python scripts/score_floor_pair.py --runs <checkpoint dir> --pairs floor:base floor_s1:base_s1 \
        --data_dir <telugu-cv-dev> --out results/cpu/relative_floor1000

Each final checkpoint is scored at 6 kbps on two held-out sets of the split the runs trained with
(val_fraction 0.25): 20 clips of the embedded corpus (first 4 s) and the first 10 real clips (first 6 s; the
model card's tuning clips), with SI-SNR, mel distance, PESQ-WB, STOI, `mel_distance_active` (the mel distance
without the nearly silent frames) and `band_level_error` (the level kept per band in the loud frames). Writes
pairs.json.
"""

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="the --checkpoint_dir of the runs")
    ap.add_argument("--pairs", nargs="+", required=True, help="with:without experiment names, one pair per seed")
    ap.add_argument("--data_dir", required=True, help="the --extra_data_dir the runs trained with")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from telucodec.coding.checkpoint import latest_checkpoint
    from telucodec.coding.inference import load
    from telucodec.config import preset
    from telucodec.data.folders import load_dataset, spec_for
    from telucodec.evaluation.metrics import band_level_error, mel_distance_active
    from telucodec.evaluation.scoring import crop_clip, evaluate_clips, reconstruct

    p = preset("cpu")
    spec = spec_for(p.codec, replace(p.train, val_fraction=0.25))
    sets = {
        "synthetic": (list(load_dataset(None, spec, "val"))[:20], 4.0),
        "real": (list(load_dataset(args.data_dir, spec, "val"))[:10], 6.0),
    }
    scored = {}
    names = [n for pair in args.pairs for n in pair.split(":")]
    for name in names:
        run = Path(args.runs) / name
        steps = max(json.loads(line).get("step", 0) for line in (run / "metrics.jsonl").read_text().splitlines())
        model = load(run)
        scored[name] = {"checkpoint": Path(str(latest_checkpoint(run))).name, "steps": steps}
        for set_name, (clips, seconds) in sets.items():
            table = evaluate_clips(model, clips, kbps=(6.0,), crop="first", seconds=seconds)["6kbps"]
            levels, active = [], []
            for x in (crop_clip(c, 16000, "first", seconds) for c in clips):
                y = reconstruct(model.codec, x, model.codec.config.n_q)
                levels.append(band_level_error(x, y, 16000))
                active.append(mel_distance_active(x, y, 16000))
            table["band_level_db"] = {b: float(np.mean([lv[b] for lv in levels])) for b in levels[0]}
            table["mel_distance_active"] = float(np.mean(active))
            scored[name][set_name] = table
            print(name, set_name, json.dumps({k: v for k, v in table.items() if k != "band_level_db"}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "pairs": [pair.split(":") for pair in args.pairs],
        "bitrate": "6 kbps",
        "sets": {
            "synthetic": "embedded corpus, held-out files, first 20 clips, first 4 s",
            "real": f"{Path(args.data_dir).name}, held-out files, first 10 clips, first 6 s",
        },
        "runs": scored,
    }
    (out / "pairs.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
