#!/usr/bin/env bash
# Runs every test: installs the prerequisites, then the unit, property and integration tests
# (the integration tests start real Docker daemons in network namespaces, so run as root),
# then each benchmark once in test mode (criterion: checks they run, measures nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo test --locked -- --test-threads="${GITFLEET_TEST_THREADS:-4}"
cargo test --locked --benches
