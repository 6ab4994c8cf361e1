#!/usr/bin/env bash
# Render benchmark (issue 3): a 30-component platform (24 Helm charts and 6
# plain-YAML directories). Baseline, measured in this same run: `helm
# template` of each chart, one after the other (what a shell loop or
# helmfile's sequential mode does). rekube renders the same platform cold
# (no render cache) and warm (cache filled), in parallel. Prints ratios.
#
# Usage: benches/render.sh [RUNS]   (default 5; needs scripts/testbed-setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
CACHE="${REKUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekube}"
HELM="$CACHE/tools/helm"
cargo build --release --locked -q -p rekube
REKUBE="$PWD/target/release/rekube"
CHART="$PWD/examples/platform/charts/hello"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bench_cache="$work/cache"
mkdir -p "$bench_cache/tools" && ln -s "$HELM" "$bench_cache/tools/helm"
{
  echo "clusters: { bench: { provider: local } }"
  echo "components:"
  for i in $(seq -w 1 24); do
    echo "  chart-$i: { chart: { path: $CHART }, namespace: ns-$i, values: [{ replicas: $((10#$i % 3 + 1)), message: \"component $i\" }] }"
  done
  for i in $(seq -w 1 6); do
    echo "  yaml-$i: { manifests: ./yaml-$i, namespace: yaml-$i }"
    mkdir -p "$work/yaml-$i"
    for j in $(seq 1 10); do
      printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%s\ndata:\n  n: "%s"\n---\n' "$j" "$j" >> "$work/yaml-$i/all.yaml"
    done
  done
  echo "environments: { bench: { cluster: bench } }"
} > "$work/rekube.yaml"

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

baseline() {
  for i in $(seq -w 1 24); do
    printf 'replicas: %s\nmessage: "component %s"\n' "$((10#$i % 3 + 1))" "$i" > "$work/values-$i.yaml"
    "$HELM" template "chart-$i" "$CHART" --namespace "ns-$i" -f "$work/values-$i.yaml" --kube-version 1.20.2 > /dev/null
  done
}

declare -a base cold warm
for r in $(seq "$RUNS"); do
  t=$(now); baseline; base+=($(( ($(now) - t) / 1000000 )))
  t=$(now); REKUBE_CACHE="$bench_cache" "$REKUBE" -f "$work/rekube.yaml" render bench --no-cache > /dev/null 2>&1; cold+=($(( ($(now) - t) / 1000000 )))
  t=$(now); REKUBE_CACHE="$bench_cache" "$REKUBE" -f "$work/rekube.yaml" render bench > /dev/null 2>&1; warm+=($(( ($(now) - t) / 1000000 )))
done
objects=$(REKUBE_CACHE="$bench_cache" "$REKUBE" -f "$work/rekube.yaml" render bench -o json 2>/dev/null | grep -c '"kind"' || true)
b=$(printf '%s\n' "${base[@]}" | median); c=$(printf '%s\n' "${cold[@]}" | median); w=$(printf '%s\n' "${warm[@]}" | median)
echo "render benchmark: 30 components (24 charts, 6 YAML dirs), ~$objects objects, median of $RUNS runs on $(nproc) cores"
echo "  helm template x24, sequential : ${b} ms"
echo "  rekube render, cold (no cache): ${c} ms  ($(awk "BEGIN {printf \"%.1f\", $b/$c}")x faster)"
echo "  rekube render, warm (cached)  : ${w} ms  ($(awk "BEGIN {printf \"%.1f\", $b/$w}")x faster; goal >= 3x)"
