#!/usr/bin/env bash
# Renders the labelled reference sets training and evaluation use, into DIR (default
# /tmp/citeflow-training): for seeds 1 and 3 the training styles (CSL and free-form,
# training/corpus/render.py --styles-split train) and citeflow's own generator; for seed 2 the
# held-out styles (--styles-split test) and the generator. Each set is DIR/NAME.index.jsonl
# (the publications indexed) and DIR/NAME.gold.jsonl (references with their style).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/citeflow-training}
CITEFLOW=${CITEFLOW:-target/release/citeflow}
mkdir -p "$WORK"
[ -x "$WORK/corpus-venv/bin/python" ] || { python3 -m venv "$WORK/corpus-venv" && "$WORK/corpus-venv/bin/pip" install -q -r training/corpus/requirements.txt; }
render() { # name seed split
  [ -s "$WORK/$1.gold.jsonl" ] && return
  "$WORK/corpus-venv/bin/python" training/corpus/render.py --epmc data/sample/epmc/*.jsonl.gz --index "$WORK/$1.index.jsonl" \
    --gold "$WORK/$1.gold.jsonl" --seed "$2" --positives 6000 --negatives 6000 --held-out 5000 --styles-split "$3" --quiet
}
synth() { # name seed
  [ -s "$WORK/$1.gold.jsonl" ] && return
  "$CITEFLOW" synth --epmc data/sample/epmc/*.jsonl.gz --index "$WORK/$1.index.jsonl" --gold "$WORK/$1.gold.jsonl" --seed "$2"
}
render csl-train-1 1 train
render csl-train-3 3 train
render csl-test-2 2 test
synth synthetic-1 1
synth synthetic-3 3
synth synthetic-2 2
