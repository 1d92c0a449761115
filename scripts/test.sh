#!/usr/bin/env bash
# Runs every test: installs the prerequisites, runs each benchmark once in test mode
# (criterion: checks they run, measures nothing), then the unit, property and integration
# tests (the integration tests start real Docker daemons in network namespaces: run as root).
# Ends with one line counting every test that ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --bench plan --bench load 2>&1 | tee "$log"
cargo test --locked -- --test-threads="${GITFLEET_TEST_THREADS:-4}" 2>&1 | tee -a "$log"
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "gitfleet: %d passed, %d failed\n", passed, failed }' "$log"
