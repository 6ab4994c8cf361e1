#!/usr/bin/env bash
# Coverage-guided fuzzing (issue 15) with cargo-fuzz (libFuzzer, AddressSanitizer)
# on the nightly toolchain: the spec loader, values merging, the manifest
# splitter, the backup archive reader, and the plan's diff and masking. Each
# target runs for SECONDS (default 120, so 10 minutes in all), starting from
# its seed corpus in fuzz/seeds/<target> (kept; libFuzzer's finds go to
# target/fuzz-corpus). A crash leaves its input in fuzz/artifacts/<target>/
# and fails the script: turn it into a regression test, then fix it.
#
# Usage: [FUZZ_SECONDS=120] benches/fuzz.sh [target...]   (needs `rustup toolchain install nightly`)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-120}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec_load values_merge manifest_split backup_archive plan_diff)
cargo +nightly fuzz build
total_runs=0
for t in "${targets[@]}"; do
  corpus="target/fuzz-corpus/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  log="target/fuzz-$t.log"
  cargo +nightly fuzz run "$t" "$corpus" "fuzz/seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 > "$log" 2>&1 || {
    echo "fuzz target $t CRASHED; input in fuzz/artifacts/$t/:" >&2; tail -40 "$log" >&2; exit 1; }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  echo "  $t: ${runs:-?} executions in ${SECONDS_EACH}s, coverage ${cov:-?} edges, 0 crashes"
  total_runs=$((total_runs + ${runs:-0}))
done
echo "fuzzing: ${#targets[@]} targets, $total_runs executions, 0 crashes"
