#!/bin/bash
# The fine-tune levers of chapter 15 (results/cpu/finetune_levers): six 1500-step fine-tunes of the shipped model
# (fresh optimizer, warm-up then cosine from lr 3e-4, the same data and split), two at a time on two cores, then
# scored side by side on the model card's 10 tuning clips, with 3 s listening samples of the first listening clip.
#
#   bash scripts/finetune_levers.sh <telugu-cv-dev folder> <scratch folder>
set -euo pipefail
DATA=${1:?usage: finetune_levers.sh <telugu-cv-dev folder> <scratch folder>}
WORK=${2:?usage: finetune_levers.sh <telugu-cv-dev folder> <scratch folder>}
OUT=results/cpu/finetune_levers
mkdir -p "$WORK" "$OUT"
train() {  # name, recipe, extra arguments
  local name=$1 rec=$2; shift 2
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_DISABLE=1 python -m telucodec train --recipe "$rec" --preset cpu \
    --init_from results/one-speaker/telucodec.safetensors --extra_data_dir "$DATA" --val_fraction 0.25 \
    --steps 1500 --learning_rate 3e-4 --checkpoint_every 100 --keep_every 500 \
    --checkpoint_dir "$WORK/runs" --experiment_name "$name" --resume "$@" > "$WORK/$name.log" 2>&1
}
train control working & train preemph working --with pre_emphasis & wait
train lowband working --with low_band_waveform & train lowband_rf working --with low_band_waveform,relative_floor & wait
train adv adversarial --disc_warmup_steps 100 & train adv_lowband adversarial --disc_warmup_steps 100 --with low_band_waveform & wait
models=()
for r in control preemph lowband lowband_rf adv adv_lowband; do models+=("$r=$WORK/runs/$r"); done
python scripts/score_checkpoints.py --pauses --opus --models "${models[@]}" shipped=results/one-speaker/telucodec.safetensors \
  --data_dir "$DATA" --out "$OUT/comparison.json"
for r in control preemph lowband lowband_rf adv adv_lowband; do
  grep -h "^done:" "$WORK/$r.log" | sed "s/^/$r: /"
done > "$OUT/training_times.txt"
python - "$WORK" <<'PY'
import json, sys
from pathlib import Path
import telucodec
from telucodec.data.audio_io import read_audio, write_audio
from telucodec.paths import RESULTS_DIR
listening = RESULTS_DIR / "one-speaker" / "listening"
clip = json.loads((listening / "samples.json").read_text())["clips"][0]
x = read_audio(listening / clip["files"]["original"], 16000)[:3 * 16000]
out = RESULTS_DIR / "cpu" / "finetune_levers"
for name in ("control", "lowband", "adv", "adv_lowband"):
    model = telucodec.load(Path(sys.argv[1]) / "runs" / name)
    write_audio(out / f"{clip['name']}_{name}_6kbps.flac", model.decode(model.encode(x, 16000, kbps=6.0), len(x)), 16000)
print("samples written for", clip["name"])
PY
