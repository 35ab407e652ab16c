#!/usr/bin/env bash
# Add envelope codebooks (telucodec.codec.envelope) to a trained codec, ship the result and measure it.
#   bash scripts/ship_envelope.sh <telugu-cv-dev folder> [CODEC.safetensors]
# CODEC (default: the shipped model) is the codec as trained; envelope codebooks it already has are replaced, so
# running this twice gives the same file. The codebooks are fitted on the codec's training split (embedded corpus +
# the folder, 25 % of the files of each held out); its weights are not changed. training.json keeps the codec's
# training record and gains an "envelope" entry; the quality curve is the codec's (the envelope is fitted once,
# after training). telucodec.coding.inference.without_envelope(telucodec.load()) is the codec without them.
set -euo pipefail
DEV=${1:?folder of real speech the codec trained on}; OUT=results/one-speaker; CODEC=${2:-$OUT/telucodec.safetensors}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
SRC=$(mktemp --suffix .safetensors); cp "$CODEC" "$SRC"      # the output may be the input
python -m telucodec fit-envelope "$OUT/telucodec.safetensors" --checkpoint "$SRC" --data_dir "$DEV" \
    --val_fraction 0.25 | sed "s#$SRC#$CODEC as it was#" | tee "$OUT/fit_envelope.log"
rm "$SRC"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
from safetensors import safe_open
out = Path(sys.argv[1])
with safe_open(str(out / "telucodec.safetensors"), "pt") as f:
    fit = json.loads(f.metadata()["envelope_fit"])
info = json.loads((out / "training.json").read_text())
from telucodec.bench.common import machine_info
from telucodec.cli.shipped import SHIPPED_ENVELOPE_COMMAND
m = machine_info()
info["envelope"] = {**fit, "command": SHIPPED_ENVELOPE_COMMAND, "threads": 1, "machine": f"{m['cpu']}, {m['logical_cpus']} logical CPUs"}
(out / "training.json").write_text(json.dumps(info, indent=1))
PY
CK="$OUT/telucodec.safetensors"
python -m telucodec bench quality --checkpoint "$CK" --data_dir "$DEV" --split val --val_fraction 0.25 \
    --max_clips 40 --max_seconds 6 --visqol --out "$OUT/quality_dev" > "$OUT/quality_dev.log" 2>&1 &
python -m telucodec bench quality --checkpoint "$CK" --split val --val_fraction 0.25 --max_clips 20 \
    --max_seconds 6 --out "$OUT/quality_corpus" > "$OUT/quality_corpus.log" 2>&1
wait
python -m telucodec bench speed --checkpoint "$CK" --devices cpu-1,cpu-all --out "$OUT/speed" > "$OUT/speed.log" 2>&1
python scripts/model_card_one_speaker.py "$OUT"
python scripts/listening_samples.py --data_dir "$DEV" --out "$OUT/listening"
