"""Listening samples of real held-out Telugu speech for chapter 15: the first 4 s of two validation-split clips
of the dev speaker (Mozilla Common Voice layout, CC0-1.0; files the shipped model never trained on), coded by
the shipped model at 1.5, 3 and 6 kbps (and at 6 kbps without its envelope codebooks, "telucodec-6-plain": the
codec as trained) and by Opus, AMR-NB and Codec2, written as 16-bit FLAC with a JSON of
every file's scores (telucodec.evaluation.scoring.score, ViSQOL included).

    python scripts/listening_samples.py --data_dir ../shared/data/telugu-cv-dev --out results/one-speaker/listening
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

SYSTEMS = ("codec2-3200", "amrnb-4.75", "opus-6", "opus-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--out", default="results/one-speaker/listening")
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args(argv)
    from telucodec.cli.shipped import data_spec
    from telucodec.coding.inference import ONE_SPEAKER, load, without_envelope
    from telucodec.data.audio_io import write_audio
    from telucodec.data.folders import load_dataset
    from telucodec.evaluation import baselines as B
    from telucodec.evaluation.scoring import score

    model = load(ONE_SPEAKER)
    plain = without_envelope(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val = load_dataset(args.data_dir, data_spec(), "val")
    # the longest held-out clips, so that each sample holds a whole sentence
    order = np.argsort([-len(c) for c in val])[: args.clips]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = {
        "source": "telugu-cv-dev validation split (val_fraction 0.25, as the model card); CC0-1.0",
        "seconds": args.seconds,
        "clips": [],
    }
    for i in order:
        name = Path(val.paths[i]).stem
        x = np.asarray(val[i][: int(args.seconds * 16000)], np.float32)
        coded = {f"telucodec-{k:g}": model.decode(model.encode(x, 16000, kbps=k), len(x)) for k in (1.5, 3.0, 6.0)}
        if plain is not model:  # the codec as trained: 12 codec stages, no envelope codebooks
            coded["telucodec-6-plain"] = plain.decode(plain.encode(x, 16000, kbps=6.0), len(x))
        for key in SYSTEMS:
            if key not in B.unavailable_baselines():
                coded[key] = B.round_trip(key, x, 16000).decoded[: len(x)]
        write_audio(out / f"{name}_original.flac", x, 16000)
        rows = {}
        for key, y in coded.items():
            write_audio(out / f"{name}_{key}.flac", y, 16000)
            rows[key] = {m: float(v) for m, v in score(x, y, 16000, visqol=True).items()}
        index["clips"].append(
            {
                "name": name,
                "files": {"original": f"{name}_original.flac", **{k: f"{name}_{k}.flac" for k in coded}},
                "scores": rows,
            }
        )
        print(name, {k: round(v["pesq_wb"], 2) for k, v in rows.items()})
    (out / "samples.json").write_text(json.dumps(index, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
