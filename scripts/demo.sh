#!/usr/bin/env bash
# The quick start: runs the citation job end to end on the bundled sample.
# Installs and starts PostgreSQL and a Kafka-protocol broker (tansu) if needed, starts from
# empty topics and an empty database, creates the topics, loads the sample, runs the job
# until it has caught up, and prints what the views hold.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh start
scripts/services.sh reset
cargo build --quiet --bin citeflow

citeflow() { target/debug/citeflow --config config/local.toml "$@"; }
started=$(date +%s.%N)
citeflow topics
citeflow load --data data/sample
loaded=$(date +%s.%N)
RUST_LOG=${RUST_LOG:-warn} citeflow run --until-caught-up
finished=$(date +%s.%N)
echo
citeflow status
echo
echo "the first changes on citeflow.citations (citeflow tail citations):"
citeflow tail citations --to-end | head -n 3
echo
awk -v s="$started" -v l="$loaded" -v f="$finished" \
  'BEGIN { printf "wall time: load %.1fs, job to caught-up %.1fs, total %.1fs\n", l - s, f - l, f - s }'
