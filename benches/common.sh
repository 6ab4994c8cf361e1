# Sourced by the benchmarks: the release build, the test bed's tools, and
# timing helpers. Run from the repository root.
CACHE="${REKUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekube}"
KUBECTL="$CACHE/tools/kubectl"
HELM="$CACHE/tools/helm"
cargo build --release --locked -q -p rekube
REKUBE="$PWD/target/release/rekube"
command -v /usr/bin/time >/dev/null || { apt-get install -y -q time >/dev/null; }

# K8S=1.20 or K8S=1.34 picks the local clusters' build (default: the newest).
K8S="${K8S:-}"
k8s_key() { if [ -n "$K8S" ]; then printf ', kubernetes: "%s"' "$K8S"; fi; }
now() { date +%s%N; }
ms() { echo $(( ($(now) - $1) / 1000000 )); }
# run LOG COMMAND...: runs a benchmark step, failing the benchmark (with the
# log's tail) when it fails.
run() {
  local log="$1"; shift
  "$@" > "$log" 2>&1 || { echo "benchmark step failed: $*" >&2; tail -20 "$log" >&2; exit 1; }
}
ratio() { awk "BEGIN {printf \"%.2f\", $1/$2}"; }

# example_platform: moves into a fresh copy of examples/platform (in $work),
# on K8S's build when K8S is set; its cluster is taken down and the copy
# removed when the script exits.
example_platform() {
  work="$(mktemp -d)"
  cp -r examples/platform/. "$work/"
  rm -rf "$work/.rekube"
  if [ -n "$K8S" ]; then sed -i "s/kubernetes: \"1.34\"/kubernetes: \"$K8S\"/" "$work/rekube.yaml"; fi
  trap '(cd "$work" && "$REKUBE" down dev >/dev/null 2>&1 || true); rm -rf "$work"' EXIT
  cd "$work"
}
