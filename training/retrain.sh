#!/usr/bin/env bash
# Retrains the bundled scorer (training/scorer.onnx) from scratch, reproducibly:
#   1. references rendered from the bundled EPMC sample in the *training* citation styles
#      (training/corpus/render.py --styles-split train, seeds 1 and 3) and by citeflow's own
#      generator (citeflow synth, seeds 1 and 3);
#   2. the features of every candidate pair the dataflow considers (citeflow features);
#   3. training/train.py: a gradient-boosted classifier, exported to ONNX, with a report on the
#      *held-out* sets: CSL styles never trained on (--styles-split test, seed 2), citeflow's
#      generator seed 2, and the NLM gold (data/sample/gold).
# Then rebuild citeflow (the model is compiled in) and run `training/evaluate.sh`.
#
#   training/retrain.sh            # work files in ${WORK:-/tmp/citeflow-training}
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/citeflow-training}
CITEFLOW=${CITEFLOW:-target/release/citeflow}
mkdir -p "$WORK"
training/sets.sh "$WORK"
[ -x "$WORK/train-venv/bin/python" ] || { python3 -m venv "$WORK/train-venv" && "$WORK/train-venv/bin/pip" install -q -r training/requirements.txt; }
for set in csl-train-1 csl-train-3 synthetic-1 synthetic-3 csl-test-2 synthetic-2; do
  "$CITEFLOW" features --epmc "$WORK/$set.index.jsonl" --gold "$WORK/$set.gold.jsonl" --out "$WORK/$set.csv"
done
"$CITEFLOW" features --epmc data/sample/epmc/*.jsonl.gz --gold data/sample/gold/*.jsonl --out "$WORK/gold-dev.csv"
"$WORK/train-venv/bin/python" training/train.py \
  --train "$WORK/csl-train-1.csv" "$WORK/csl-train-3.csv" "$WORK/synthetic-1.csv" "$WORK/synthetic-3.csv" \
  --test "$WORK/csl-test-2.csv" "$WORK/synthetic-2.csv" "$WORK/gold-dev.csv" \
  --out training/scorer.onnx --report training/report.md
