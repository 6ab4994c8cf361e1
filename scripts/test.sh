#!/usr/bin/env bash
# The test command: installs and builds the test bed if needed (see
# scripts/testbed-setup.sh), runs every test against it, then fails if any
# process a test started is still running.
set -euo pipefail
cd "$(dirname "$0")/.."

secs() { date +%s; }
t0=$(secs)
scripts/testbed-setup.sh all
t1=$(secs)
echo "[test] test bed ready in $((t1 - t0))s" >&2

if ! command -v cargo >/dev/null; then
  echo "[test] cargo not found: install a Rust toolchain (1.89 or newer), e.g. with rustup" >&2
  exit 1
fi

tmp="${TMPDIR:-/tmp}"
leftovers() {
  # Processes of test clusters (temporary directories) and test moto servers.
  pgrep -af -- "$tmp/rekube-cp-|$tmp/[^ ]*/\.rekube/clusters/|moto_server -H 127\.0\.0\.1" | grep -v pgrep || true
}
before="$(leftovers)"
if [ -n "$before" ]; then
  echo "[test] warning: test-bed processes were already running before the tests:" >&2
  echo "$before" >&2
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The test matrix: every test runs on each Kubernetes the test bed builds
# (rekube_testbed::k8s_version reads REKUBE_TEST_K8S).
status=0
cargo build --workspace --tests --locked
# Style gates: one format, no clippy warnings, no line over 120 columns.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
long="$(find crates -name '*.rs' -print0 | xargs -0 awk 'length > 120 { print FILENAME ":" FNR }')"
if [ -n "$long" ]; then
  echo "[test] lines over 120 columns:" >&2
  echo "$long" >&2
  exit 1
fi
for version in ${REKUBE_TEST_VERSIONS:-1.20 1.34}; do
  tv=$(secs)
  set +e
  REKUBE_TEST_K8S=$version cargo test --workspace --locked --no-fail-fast 2>&1 | tee -a "$log"
  s=${PIPESTATUS[0]}
  set -e
  [ "$s" = 0 ] || status=$s
  echo "[test] Kubernetes $version: cargo test finished in $(($(secs) - tv))s (exit $s)" >&2
done
t2=$(secs)
echo "[test] cargo test finished in $((t2 - t1))s (exit $status)" >&2

after="$(leftovers)"
if [ -n "$after" ] && [ "$after" != "$before" ]; then
  echo "[test] FAILED: processes started by the tests are still running:" >&2
  echo "$after" >&2
  status=1
fi
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
