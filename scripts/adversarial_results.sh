#!/usr/bin/env bash
# Collect the adversarial fine-tune, its reconstruction-only control and the overpowered run into
# results/adversarial/ (what notebooks/14_adversarial_training.ipynb reads).
#   bash scripts/adversarial_results.sh CHECKPOINT_DIR <telugu-cv-dev folder>
# CHECKPOINT_DIR holds the run folders adversarial/, reconstruction/ and overpowered/ (results/adversarial/README.md
# has the commands that made them).
set -euo pipefail
RUNS=${1:?checkpoint folder with the three runs}; DEV=${2:?folder of real speech the runs trained on}
OUT=results/adversarial
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python - "$RUNS" "$OUT" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from telucodec.coding import checkpoint as ckpt
from telucodec.data.audio_io import write_audio
from telucodec.bench.common import machine_info
from telucodec.cli.demo import demo_clip
from telucodec.coding.inference import export_safetensors, load
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
KEEP = ("step", "loss", "waveform", "stft", "mel", "vq", "discriminator", "adversarial", "feature",
        "grad_norm", "grad_norm_discriminator", "lr")
info = {"machine": machine_info()["cpu"] + ", 2 logical CPUs, one thread per run", "runs": {}}
for name in ("reconstruction", "adversarial", "overpowered"):
    path, state = ckpt.load_latest_good(runs / name)
    rows = [json.loads(l) for l in (runs / name / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: r[k] for k in KEEP if k in r} for r in rows if "step" in r]
    info["runs"][name] = {"steps": state["step"], "train_minutes": state["train_seconds"] / 60,
                          "train_config": state["train_config"], "history": rows}
    if name != "overpowered":
        export_safetensors(load(path), out / f"{name}.safetensors",
                           {"steps_after_shipped": state["step"], "recipe": "adversarial" if name == "adversarial"
                            else "working", "started_from": "the shipped model, step 4800"})
    else:
        _, x = demo_clip()
        m = load(path)
        write_audio(out / "overpowered_sample.flac", m.decode(m.encode(x, 16000, kbps=6.0), len(x))[: 3 * 16000], 16000)
    print(name, state["step"], f"{state['train_seconds'] / 60:.1f} min")
(out / "training.json").write_text(json.dumps(info, indent=1))
PY
for run in ${CURVES:-reconstruction adversarial overpowered}; do
  python scripts/quality_curve.py "$RUNS/$run" --data_dir "$DEV" --out "$OUT/curve_$run" > "$OUT/curve_$run.log" 2>&1
done &
python scripts/adversarial_comparison.py --data_dir "$DEV" --out "$OUT" \
  shipped=results/one-speaker/telucodec.safetensors reconstruction="$OUT/reconstruction.safetensors" \
  adversarial="$OUT/adversarial.safetensors" overpowered="$RUNS/overpowered" > "$OUT/comparison.log" 2>&1
wait
