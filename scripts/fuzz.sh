#!/usr/bin/env bash
# Runs the loader's libFuzzer target (fuzz/fuzz_targets/load.rs) under a memory limit and
# prints libFuzzer's summary (executions per second, corpus size, findings).
#
#   bash scripts/fuzz.sh                 # 300 s
#   SECONDS_TO_RUN=3600 bash scripts/fuzz.sh
#
# Needs nightly Rust (`rustup toolchain install nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz`). Built without a sanitizer (`-s none`): the loader is safe
# Rust, and what is looked for is a panic, a hang (-timeout) or unbounded memory
# (-rss_limit_mb / -malloc_limit_mb). New inputs go to fuzz/corpus/load (ignored by Git);
# a finding is written to fuzz/artifacts/load/ and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${SECONDS_TO_RUN:-300}
mkdir -p fuzz/corpus/load
cargo +nightly fuzz build -s none load
cargo +nightly fuzz run -s none load fuzz/corpus/load fuzz/seeds -- \
    -dict=fuzz/compose.dict \
    -max_total_time="$SECONDS_TO_RUN" \
    -rss_limit_mb=512 \
    -malloc_limit_mb=512 \
    -timeout=10 \
    -max_len=262144 \
    -print_final_stats=1
