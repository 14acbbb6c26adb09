#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo fuzz, on the stable toolchain with
# `--sanitizer none`) of everything citeflow parses from outside: message envelopes,
# reference sections and strings, timestamps, COPY rows, topic archives, a job's metrics text
# as the autoscaler reads it (targets in fuzz/fuzz_targets/).
#
#   scripts/fuzz.sh                            # every target for FUZZ_SECONDS (20) each: what CI runs
#   FUZZ_SECONDS=3600 scripts/fuzz.sh references   # by hand, longer, one target
#
# Each run starts from the committed seeds (fuzz/seeds/TARGET) and the inputs earlier runs found
# (fuzz/corpus/TARGET, not committed). An input that panics, or takes longer than FUZZ_TIMEOUT
# seconds (10: a cost that grows worse than linearly with the input), stops the run with a
# non-zero exit and is saved in fuzz/artifacts/TARGET/; replay it with
# `cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/FILE` inside fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_EACH=${FUZZ_SECONDS:-20}
TIMEOUT=${FUZZ_TIMEOUT:-10}
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${SECONDS_EACH}s" >&2
  status=0
  cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::new_units_added|==[0-9]+==|SUMMARY|thread '|Done)" "$log" >&2 || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets, ${SECONDS_EACH}s each: no failure"
