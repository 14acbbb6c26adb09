#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests. Installs PostgreSQL (Debian's
# package) and tansu (built once with cargo, cached outside the repository) if missing; each
# integration test starts its own throwaway PostgreSQL cluster and broker.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh install
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
exit "$status"
