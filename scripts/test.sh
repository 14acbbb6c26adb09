#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests. Installs PostgreSQL (Debian's
# package) and tansu (built once with cargo, cached outside the repository) if missing; each
# integration test starts its own throwaway PostgreSQL cluster and broker.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh install
cargo test --workspace --locked
