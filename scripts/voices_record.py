"""Write results/pretrained/training.json: how the shipped thousand-voice codec was made, read from the files.

    python scripts/voices_record.py results/pretrained

The run's steps, training and CPU seconds come from the weights' own metadata (written by the training loop), the
envelope and entropy fits from theirs, the data from results/speakers/lists.tsv (the train list). Typed by hand:
the commands (the ones results/voices/README.md and scripts/ship_voices.sh ran) and the machine and thread counts,
which the run's checkpoints do not record (its logs in results/voices/long/ and the notes of its sessions do).
"""

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUN_COMMAND = (
    "OMP_NUM_THREADS=1 python -m telucodec train --recipe voices --data_list results/speakers/lists.tsv "
    "--data_root ../shared/data --steps 40000 --keep_every 2000 --checkpoint_every 250 "
    "--checkpoint_dir checkpoints --experiment_name voices --resume"
)
ENVELOPE_COMMAND = (
    "python -m telucodec fit-envelope ENVELOPE.safetensors --compact --no_corpus "
    "--checkpoint results/voices/long/step_00040000.safetensors --data_list results/speakers/lists.tsv "
    "--data_root ../shared/data"
)
ENTROPY_COMMAND = (
    "python -m telucodec fit-entropy results/pretrained/telucodec.safetensors --no_corpus "
    "--checkpoint ENVELOPE.safetensors --data_list results/speakers/lists.tsv --data_root ../shared/data"
)


def train_list_summary(path=ROOT / "results" / "speakers" / "lists.tsv") -> dict:
    """Clips, speakers, minutes, languages and licence of each corpus folder of the train list."""
    by = defaultdict(lambda: {"clips": 0, "speakers": set(), "ms": 0, "languages": set(), "licences": set()})
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["list"] != "train":
                continue
            e = by[row["corpus"]]
            e["clips"] += 1
            e["speakers"].add(row["speaker"])
            e["ms"] += int(row["duration_ms"])
            e["languages"].add(row["language"])
            e["licences"].add(row["licence"])
    return {
        corpus: {
            "clips": e["clips"],
            "speakers": len(e["speakers"]),
            "minutes": round(e["ms"] / 60000, 1),
            "languages": sorted(e["languages"]),
            "licences": sorted(e["licences"]),
        }
        for corpus, e in sorted(by.items())
    }


def main(folder):
    import telucodec

    folder = Path(folder)
    weights = folder / "telucodec.safetensors"
    model = telucodec.load(weights)
    meta = model.metadata
    envelope = json.loads(meta["envelope_fit"])
    data = train_list_summary()
    record = {
        "name": "voices",
        "recipe": "the voices recipe (`telucodec.training.recipes`, `--recipe voices`): relative log floor, waveform "
        "term below 1 kHz, levels drawn over ±20 dB, EMA codebooks without a codebook loss, one straight-through "
        "estimator after the quantizer loop",
        "architecture": "convolutional encoder (cpu-deep preset), 12-stage residual VQ of 1024 codes (32 dims), "
        "frame-rate ConvNeXt decoder with an inverse-STFT head (Vocos-style)",
        "parameters": sum(p.numel() for p in model.codec.parameters()),
        "steps": int(meta["step"]),
        "train_seconds": float(meta["train_seconds"]),
        "cpu_seconds": float(meta["cpu_seconds"]),
        "wall_minutes": float(meta["train_seconds"]) / 60,
        "schedule_note": "cosine schedule over 40000 steps",
        "machine": "AMD EPYC, 2 logical CPUs",
        "threads": "one torch thread to step 12000, two after; three sessions, resumed from checkpoints",
        "command": RUN_COMMAND,
        "data": data,
        "data_note": "the train list of results/speakers/lists.tsv: speakers disjoint from the tune and test lists "
        "(scripts/speaker_lists.py); the Telugu speaker's held-out files are the dev list",
        "envelope": {**envelope, "command": ENVELOPE_COMMAND},
        "entropy": {**model.entropy.report, "id": model.entropy.hex_id, "command": ENTROPY_COMMAND},
        "stored_as": meta.get("stored_as", "float32"),
        "file_bytes": weights.stat().st_size,
        "codec_config": model.config.to_dict(),
    }
    (folder / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {folder / 'training.json'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/pretrained")
