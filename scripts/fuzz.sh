#!/usr/bin/env bash
# Runs the loader's libFuzzer target (fuzz/fuzz_targets/load.rs) under a memory limit and
# prints libFuzzer's summary (executions per second, corpus size, findings).
#
#   bash scripts/fuzz.sh                      # 300 s, small seeds (fuzz/seeds)
#   SECONDS_TO_RUN=3600 bash scripts/fuzz.sh
#   LARGE=1 SECONDS_TO_RUN=2400 bash scripts/fuzz.sh   # also the large seeds, see below
#
# Needs nightly Rust (`rustup toolchain install nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz`). Built without a sanitizer (`-s none`): the loader is safe
# Rust, and what is looked for is a panic, a hang (-timeout) or unbounded memory
# (-rss_limit_mb / -malloc_limit_mb). New inputs go to fuzz/corpus/load (ignored by Git);
# a finding is written to fuzz/artifacts/load/ and the script exits non-zero.
#
# LARGE=1 also seeds the run with fuzz/seeds-large/, written by scripts/fuzz-seeds.sh when
# it is missing (delete the folder to write it anew): the shared corpus's real Compose files,
# the bombs of scripts/bombs.sh scaled to max_len, and valid files of 100 to 250 KB. Without
# them the inputs only grow to about 1.5 KB in a run, and big files are never tried (issue 9).
# A big input runs about a thousand times slower than a small one, so give such a run time
# (40 minutes or more): a 256 KB input takes about 0.4 s of CPU in the fuzz build, so a run
# makes tens of executions a second (25 to 170 measured) instead of thousands. NICE (default 15) is the run's
# niceness; TIMEOUT (default 10) is libFuzzer's -timeout, which counts wall-clock seconds: on
# a machine loaded well past its cores a low-priority run can trip it on an input that needs
# 0.5 s of CPU (it did once, at a load average of 13 on 2 cores); replay such a finding with
# `fuzz/target/*/release/load FILE` under `time` before taking it for a hang.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${SECONDS_TO_RUN:-300}
NICE=${NICE:-15}
TIMEOUT=${TIMEOUT:-10}
MAX_LEN=262144
mkdir -p fuzz/corpus/load
seeds=(fuzz/seeds)
if [[ "${LARGE:-0}" == 1 ]]; then
    [[ -d fuzz/seeds-large ]] || MAX_LEN=$MAX_LEN bash scripts/fuzz-seeds.sh
    seeds+=(fuzz/seeds-large)
fi
cargo +nightly fuzz build -s none load
nice -n "$NICE" cargo +nightly fuzz run -s none load fuzz/corpus/load "${seeds[@]}" -- \
    -dict=fuzz/compose.dict \
    -max_total_time="$SECONDS_TO_RUN" \
    -rss_limit_mb=512 \
    -malloc_limit_mb=512 \
    -timeout="$TIMEOUT" \
    -max_len="$MAX_LEN" \
    -print_final_stats=1
