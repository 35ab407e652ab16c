"""Score trained checkpoints side by side at 6 kbps on held-out clips of the split they trained with
(val_fraction 0.25 of the `cpu` preset): chapter 14's relative-floor experiments and the lever runs after them.

Two ways to name the checkpoints, one scoring path:

    # run pairs trained the same steps with the same seed, with and without a change (writes <out>/pairs.json)
    python scripts/score_checkpoints.py --runs <checkpoint dir> --pairs floor:base floor_s1:base_s1 \
        --data_dir <telugu-cv-dev> --out results/cpu/relative_floor1000

    # named models on the real clips, with the pause checks (writes the .json named by --out)
    python scripts/score_checkpoints.py --models relative_floor=<run folder> \
        shipped=results/one-speaker/telucodec.safetensors --pauses --opus \
        --data_dir <telugu-cv-dev> --out results/cpu/relative_floor6000/comparison.json

Every checkpoint gets SI-SNR, SNR, mel distance, PESQ-WB, STOI, `mel_distance_active` (the mel distance without
the nearly silent frames) and `band_level_error` (the level kept per band in the loud frames). `--pairs` scores two
sets: 20 clips of the embedded corpus (first 4 s) and the first 10 real clips (first 6 s; the model card's tuning
clips); `--models` the real clips only. `--pauses` adds PESQ-WB and mel distance again with the decoded pauses
replaced by the input's (frames more than 50 dB under the loudest, `telucodec.evaluation.metrics.loud_frames`): how
much of each score the pauses decide; and the 1-4 kHz level error binned by the input's loudness in that band
(`band_level_by_loudness`, over all clips at once). `--opus` adds Opus 6 kbps's band levels on the same clips.
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

    from telucodec.evaluation.metrics import loud_frames

    n = len(x) // frame * frame
    energy = 10 * np.log10((x[:n].reshape(-1, frame) ** 2).mean(axis=1) + 1e-20)
    quiet = np.repeat(~loud_frames(energy, quiet_db), frame)
    out = y.copy()
    out[:n][quiet] = x[:n][quiet]
    return out


def score(model, clips, seconds: float, pauses: bool) -> dict:
    """One checkpoint's table on `clips` (first `seconds` of each) at 6 kbps."""
    import numpy as np

    from telucodec.evaluation import metrics as M
    from telucodec.evaluation.scoring import crop_clip, evaluate_clips, reconstruct

    table = evaluate_clips(model, clips, kbps=(6.0,), crop="first", seconds=seconds)["6kbps"]
    rows, xs, ys = [], [], []
    for x in (crop_clip(c, 16000, "first", seconds) for c in clips):
        y = reconstruct(model.codec, x, model.codec.config.n_q)
        xs.append(x), ys.append(y[: len(x)])
        row = {"bands": M.band_level_error(x, y, 16000), "mel_distance_active": M.mel_distance_active(x, y, 16000)}
        if pauses:
            g = gate_pauses(x, y)
            row.update(pesq_gated=M.pesq_wb(x, g), mel_gated=M.mel_distance(x, g))
        rows.append(row)
    table["band_level_db"] = {b: float(np.mean([r["bands"][b] for r in rows])) for b in rows[0]["bands"]}
    for k in [k for k in rows[0] if k != "bands"]:
        table[k] = float(np.mean([r[k] for r in rows]))
    if pauses:
        table["band_1_4_khz_by_loudness"] = M.band_level_by_loudness(np.concatenate(xs), np.concatenate(ys))
    return table


def opus_levels(clips, seconds: float) -> dict:
    import numpy as np

    from telucodec.evaluation.baselines import round_trip
    from telucodec.evaluation.metrics import band_level_by_loudness, band_level_error
    from telucodec.evaluation.scoring import crop_clip

    xs = [crop_clip(c, 16000, "first", seconds) for c in clips]
    ys = [round_trip("opus-6", x, 16000).decoded[: len(x)] for x in xs]
    levels = [band_level_error(x, y) for x, y in zip(xs, ys)]
    return {
        "band_level_db": {b: float(np.mean([lv[b] for lv in levels])) for b in levels[0]},
        "band_1_4_khz_by_loudness": band_level_by_loudness(np.concatenate(xs), np.concatenate(ys)),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    named = ap.add_mutually_exclusive_group(required=True)
    named.add_argument("--models", nargs="+", help="label=checkpoint (run folder, .pt or .safetensors)")
    named.add_argument("--pairs", nargs="+", help="with:without experiment names under --runs, one pair per seed")
    ap.add_argument("--runs", help="the --checkpoint_dir of the runs (with --pairs)")
    ap.add_argument("--data_dir", required=True, help="the real speech the runs trained with (--extra_data_dir)")
    ap.add_argument("--pauses", action="store_true", help="also the pause-gated scores and the loudness bins")
    ap.add_argument("--opus", action="store_true", help="also Opus 6 kbps's band levels on the real clips")
    ap.add_argument("--clips", type=int, default=10, help="real clips scored (default 10)")
    ap.add_argument("--out", required=True, help="a .json file (--models) or a folder for pairs.json (--pairs)")
    args = ap.parse_args(argv)
    if args.pairs and not args.runs:
        ap.error("--pairs needs --runs")
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    from telucodec.coding.checkpoint import latest_checkpoint
    from telucodec.coding.inference import load
    from telucodec.config import preset
    from telucodec.data.folders import load_dataset, spec_for

    p = preset("cpu")
    spec = spec_for(p.codec, replace(p.train, val_fraction=0.25))
    real = list(load_dataset(args.data_dir, spec, "val"))[: args.clips]
    real_name = f"{Path(args.data_dir).name}, held-out files (val_fraction 0.25), first {len(real)}"
    if args.models:
        result = {"clips": len(real), "crop": "first 6 s", "bitrate": "6 kbps", "data": real_name, "models": {}}
        for item in args.models:
            label, path = item.split("=", 1)
            table = score(load(path), real, 6.0, args.pauses)
            result["models"][label] = {"checkpoint": path, **table}
            print(label, json.dumps({k: v for k, v in table.items() if k != "band_level_db"}), flush=True)
        if args.opus:
            result["opus-6"] = opus_levels(real, 6.0)
        out = Path(args.out)
    else:
        sets = {"synthetic": (list(load_dataset(None, spec, "val"))[:20], 4.0), "real": (real, 6.0)}
        scored = {}
        for name in [n for pair in args.pairs for n in pair.split(":")]:
            run = Path(args.runs) / name
            steps = max(json.loads(line).get("step", 0) for line in (run / "metrics.jsonl").read_text().splitlines())
            model = load(run)
            scored[name] = {"checkpoint": Path(str(latest_checkpoint(run))).name, "steps": steps}
            for set_name, (clips, seconds) in sets.items():
                scored[name][set_name] = table = score(model, clips, seconds, args.pauses)
                print(name, set_name, json.dumps({k: v for k, v in table.items() if k != "band_level_db"}), flush=True)
        result = {
            "pairs": [pair.split(":") for pair in args.pairs],
            "bitrate": "6 kbps",
            "sets": {
                "synthetic": "embedded corpus, held-out files, first 20 clips, first 4 s",
                "real": f"{real_name} clips, first 6 s",
            },
            "runs": scored,
        }
        if args.opus:
            result["opus-6"] = opus_levels(real, 6.0)
        out = Path(args.out) / "pairs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
