#!/usr/bin/env bash
# Export a finished working-recipe run as the shipped model and measure it (what results/pretrained/ holds).
#   bash scripts/ship_model.sh CHECKPOINT_DIR/shipped <telugu-cv-dev folder> [wall minutes of the run]
set -euo pipefail
RUN=${1:?run folder}; DEV=${2:?folder of real speech the run trained on}; WALL=${3:-}
OUT=results/pretrained
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python - "$RUN" "$OUT" "$WALL" <<'PY'
import json, platform, sys
from pathlib import Path
import torch
from telucodec import checkpoint as ckpt
from telucodec.bench.common import machine_info
from telucodec.inference import export_safetensors, load
from telucodec.shipped import SHIPPED_COMMAND
run, out, wall = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
path, state = ckpt.load_latest_good(run)
model = load(path)
export_safetensors(model, out / "telucodec.safetensors",
                   {"command": SHIPPED_COMMAND, "steps": state["step"], "recipe": "working"})
tc = state["train_config"]
info = {"preset": "cpu", "steps": state["step"], "train_seconds": state["train_seconds"],
        "wall_minutes": float(wall) if wall else state["train_seconds"] / 60,
        "schedule_note": f"cosine schedule over {tc['steps']} steps; the run was started with 7000 and resumed at "
                         "step 1000 with 4800 to fit 60 minutes (the machine's other core was busy)",
        "command": SHIPPED_COMMAND, "machine": machine_info()["cpu"] + ", 2 logical CPUs", "threads": 1,
        "parameters": sum(p.numel() for p in model.codec.parameters()),
        "data": "embedded eSpeak NG corpus (12 min) + telugu-cv-dev (80 real clips, one speaker), 25 % of the "
                "files of each held out", "train_config": tc, "codec_config": state["codec_config"],
        "fixes": state["fixes"]}
(out / "training.json").write_text(json.dumps(info, indent=1))
print("exported", out / "telucodec.safetensors", "step", state["step"])
PY
CK="$OUT/telucodec.safetensors"
python -m telucodec bench quality --checkpoint "$CK" --data_dir "$DEV" --split val --val_fraction 0.25 \
    --max_clips 40 --max_seconds 6 --visqol --out "$OUT/quality_dev" > "$OUT/quality_dev.log" 2>&1 &
python -m telucodec bench quality --checkpoint "$CK" --split val --val_fraction 0.25 --max_clips 20 \
    --max_seconds 6 --out "$OUT/quality_corpus" > "$OUT/quality_corpus.log" 2>&1
python scripts/quality_curve.py "$RUN" --data_dir "$DEV" --out "$OUT" > "$OUT/quality_curve.log" 2>&1
wait
python -m telucodec bench speed --checkpoint "$CK" --devices cpu-1,cpu-all --out "$OUT/speed" > "$OUT/speed.log" 2>&1
python scripts/model_card.py "$OUT"
