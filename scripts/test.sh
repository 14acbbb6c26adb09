#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests. Installs PostgreSQL (Debian's
# package) and tansu (built once with cargo, cached outside the repository) if missing; each
# integration test starts its own throwaway PostgreSQL cluster and broker. Then a short run of
# every fuzz target (scripts/fuzz.sh, FUZZ_SECONDS each, 15 by default; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh install
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# The benches and examples are not tests, but they must keep compiling.
cargo check --workspace --benches --examples --locked || status=$?
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
if [ "${FUZZ_SECONDS:-15}" != 0 ]; then
  FUZZ_SECONDS=${FUZZ_SECONDS:-15} scripts/fuzz.sh || status=$?
fi
exit "$status"
