#!/usr/bin/env bash
# Ship the thousand-voice codec (what results/pretrained/ holds; results/one-speaker/ keeps the first one).
#   bash scripts/ship_voices.sh ../shared/data
# From the finished voices run (results/voices/long/step_00040000.safetensors; its training command is in
# results/voices/README.md) it fits envelope codebooks and the entropy model on the train list only (never a tune or
# test speaker), writes the compact export (half-precision weights, no training-only statistics), the training
# record, the speed benchmark (timed beside EnCodec's architecture) and the model card. The yardstick on the test
# list (results/yardstick/shipped-test.*) and the listening samples are separate, slower steps:
#   python scripts/yardstick.py --data_root ../shared/data --which test --levels recorded --out A
#   python scripts/yardstick.py --data_root ../shared/data --which test --levels=-35,-25,-15 --out B
#   python scripts/yardstick.py --merge A.json B.json --out results/yardstick/shipped-test
#   python scripts/listening_unseen.py --data_root ../shared/data
set -euo pipefail
ROOT=${1:?the folder results/speakers/lists.tsv is relative to (../shared/data)}
RUN=results/voices/long/step_00040000.safetensors
OUT=results/pretrained
TMP=$(mktemp -d)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"
python -m telucodec fit-envelope "$TMP/envelope.safetensors" --compact --no_corpus --checkpoint "$RUN" \
    --data_list results/speakers/lists.tsv --data_root "$ROOT" | tee "$OUT/fit_envelope.log"
python -m telucodec fit-entropy "$OUT/telucodec.safetensors" --no_corpus --checkpoint "$TMP/envelope.safetensors" \
    --data_list results/speakers/lists.tsv --data_root "$ROOT" | tee "$OUT/fit_entropy.log"
python scripts/voices_record.py "$OUT"
python -m telucodec bench speed --checkpoint "$OUT/telucodec.safetensors" --devices cpu-1,cpu-all --out "$OUT/speed" \
    | tee "$OUT/speed.log"
python scripts/model_card.py "$OUT"
rm -rf "$TMP"
