#!/usr/bin/env bash
# Evaluates the matcher (citeflow eval, default configuration: the bundled scorer) on the sets
# it was not trained on: the NLM gold (data/sample/gold), the held-out CSL and free-form styles
# (training/sets.sh: csl-test-2) and citeflow's generator's seed 2; prints each set's totals
# and its per-style table, lowest recall first.
#
#   training/evaluate.sh [DIR]      # DIR as for training/sets.sh (default /tmp/citeflow-training)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/citeflow-training}
CITEFLOW=${CITEFLOW:-target/release/citeflow}
training/sets.sh "$WORK" >/dev/null
evaluate() { # name, then citeflow eval's arguments
  local name=$1; shift
  echo "== $name"
  "$CITEFLOW" eval "$@" --worst 0 | sed -n '2p; /by style/,/^$/p'
}
evaluate gold-dev --epmc data/sample/epmc/*.jsonl.gz --gold data/sample/gold/*.jsonl
evaluate csl-test-2 --epmc "$WORK/csl-test-2.index.jsonl" --gold "$WORK/csl-test-2.gold.jsonl"
evaluate synthetic-2 --epmc "$WORK/synthetic-2.index.jsonl" --gold "$WORK/synthetic-2.gold.jsonl"
