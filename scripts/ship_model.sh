#!/usr/bin/env bash
# Export a finished run as the shipped model and measure it (what results/one-speaker/ holds).
#   bash scripts/ship_model.sh CHECKPOINT_DIR/shipped <telugu-cv-dev folder> [wall minutes of the run]
# A fine-tune of the shipped model (notebook 14, --init_from) is shipped with SHIP_FINETUNE=1 (and SHIP_COMMAND, its
# command): the training record then has both phases, and the quality curve continues the base run's.
# SHIP_SCHEDULE_NOTE describes the run's schedule in the model card (default: "cosine schedule over N steps");
# SHIP_PRESET names the network preset the run trained (default: cpu).
set -euo pipefail
RUN=${1:?run folder}; DEV=${2:?folder of real speech the run trained on}; WALL=${3:-}
export SHIP_FINETUNE=${SHIP_FINETUNE:-0}
OUT=results/one-speaker
if [ "$SHIP_FINETUNE" = 1 ]; then cp "$OUT/training.json" /tmp/telucodec_base_training.json; fi
OUT=results/one-speaker
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python - "$RUN" "$OUT" "$WALL" <<'PY'
import json, os, platform, sys
from pathlib import Path
import torch
from telucodec.coding import checkpoint as ckpt
from telucodec.bench.common import machine_info
from telucodec.coding.inference import export_safetensors, load
from telucodec.cli.shipped import SHIPPED_COMMAND
run, out, wall = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]


def optional_on(state) -> str:
    """", plus X and Y" for the optional ingredients (telucodec.training.recipes.OPTIONAL) the run trained with."""
    from telucodec.training.recipes import INGREDIENTS, OPTIONAL
    on = [name for name in OPTIONAL
          if all(state["codec_config"].get(k) == v for k, v in INGREDIENTS[name][0].items())
          and all(state["train_config"].get(k) == v for k, v in INGREDIENTS[name][1].items())]
    return (", plus " + " and ".join(f"`{n}`" for n in on)) if on else ""


path, state = ckpt.load_latest_good(run)
model = load(path)
tc = state["train_config"]
info = {"preset": os.environ.get("SHIP_PRESET", "cpu"), "steps": state["step"], "train_seconds": state["train_seconds"],
        "wall_minutes": float(wall) if wall else state["train_seconds"] / 60,
        "schedule_note": os.environ.get("SHIP_SCHEDULE_NOTE") or f"cosine schedule over {tc['steps']} steps",
        "recipe": "the working recipe (`telucodec.training.recipes`, every ingredient on" + optional_on(state) + ") with all seven fixes",
        "command": SHIPPED_COMMAND, "machine": machine_info()["cpu"] + ", 2 logical CPUs", "threads": 1,
        "parameters": sum(p.numel() for p in model.codec.parameters()),
        "data": "embedded eSpeak NG corpus (12 min) + telugu-cv-dev (80 real clips, one speaker), 25 % of the "
                "files of each held out", "train_config": tc, "codec_config": state["codec_config"],
        "fixes": state["fixes"]}
import os
if os.environ["SHIP_FINETUNE"] == "1":        # a fine-tune of the earlier shipped run: record both phases
    base = json.loads(Path("/tmp/telucodec_base_training.json").read_text())
    disc = tc.get("discriminators") or []
    info["recipe"] = ("the adversarial recipe (the working recipe plus " + " and ".join(disc) + " discriminators)"
                      if disc else "the working recipe") + " with all seven fixes, fine-tuned from the first phase"
    info["phases"] = [{k: base[k] for k in ("steps", "train_seconds", "wall_minutes", "schedule_note", "command")},
                      {"steps": state["step"], "train_seconds": state["train_seconds"],
                       "wall_minutes": state["train_seconds"] / 60,
                       "schedule_note": f"warm-up then cosine over {tc['steps']} steps from lr {tc['learning_rate']:g}",
                       "command": os.environ.get("SHIP_COMMAND", "")}]
    info["steps"] = base["steps"] + state["step"]
    info["train_seconds"] = base["train_seconds"] + state["train_seconds"]
    info["wall_minutes"] = base["wall_minutes"] + (float(wall) if wall else state["train_seconds"] / 60)
    info["schedule_note"] = (f"phase 1: {base['steps']} steps ({base['schedule_note']}); phase 2: {state['step']} "
                             f"steps from phase 1's weights with a fresh optimizer, {info['phases'][1]['schedule_note']}")
    info["command"] = base["command"] + "; then " + os.environ.get("SHIP_COMMAND", "")
(out / "training.json").write_text(json.dumps(info, indent=1))
export_safetensors(model, out / "telucodec.safetensors",
                   {"command": info["command"], "steps": info["steps"],
                    "recipe": "adversarial" if state["train_config"].get("discriminators") else "working"})
print("exported", out / "telucodec.safetensors", "step", state["step"])
PY
CK="$OUT/telucodec.safetensors"
python -m telucodec bench quality --checkpoint "$CK" --data_dir "$DEV" --split val --val_fraction 0.25 \
    --max_clips 40 --max_seconds 6 --visqol --out "$OUT/quality_dev" > "$OUT/quality_dev.log" 2>&1 &
python -m telucodec bench quality --checkpoint "$CK" --split val --val_fraction 0.25 --max_clips 20 \
    --max_seconds 6 --out "$OUT/quality_corpus" > "$OUT/quality_corpus.log" 2>&1
if [ "$SHIP_FINETUNE" = 1 ]; then         # the curve goes on from the base run's: phase 2's snapshots appended
  python scripts/quality_curve.py "$RUN" --data_dir "$DEV" --out "$OUT/phase2_curve" > "$OUT/quality_curve.log" 2>&1
  read -r BASE_STEP BASE_MIN < <(python -c "import json; t=json.load(open('/tmp/telucodec_base_training.json')); print(t['steps'], t['train_seconds'] / 60)")
  python scripts/quality_curve.py --append "$OUT/quality_curve.json" "$OUT/phase2_curve/quality_curve.json" \
      --base_step "$BASE_STEP" --base_minutes "$BASE_MIN" --out "$OUT"
  rm -r "$OUT/phase2_curve"
else
  python scripts/quality_curve.py "$RUN" --data_dir "$DEV" --out "$OUT" > "$OUT/quality_curve.log" 2>&1
fi
wait
if [ "$SHIP_FINETUNE" != 1 ]; then       # a fine-tune has the same architecture, so the same speed
  python -m telucodec bench speed --checkpoint "$CK" --devices cpu-1,cpu-all --out "$OUT/speed" > "$OUT/speed.log" 2>&1
fi
python scripts/model_card_one_speaker.py "$OUT"
