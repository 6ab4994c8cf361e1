#!/usr/bin/env bash
# Public-chart benchmark (issue 12): the test corpus of real charts
# (crates/cli/tests/fixtures/charts, at their default values), each in its
# own namespace, on two local test-bed clusters of the same build.
# Baseline, same run: `helm install --wait` of each chart, one after the
# other (what a shell loop or helmfile's sequential mode does). rekube: the
# first apply of the same charts as one platform (health-gated, like
# --wait), then the unchanged plan, the number a CI job or a pre-commit
# check pays on every run. Prints the ratio and the plan's median.
#
# Usage: [K8S=1.20|1.34] benches/charts.sh [PLANS]   (default 5 plans)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
PLANS="${1:-5}"
FIXTURES="$PWD/crates/cli/tests/fixtures/charts"

work="$(mktemp -d)"
cleanup() { (cd "$work" && "$REKUBE" down bench >/dev/null 2>&1 || true); (cd "$work" && "$REKUBE" -f base.yaml down base >/dev/null 2>&1 || true); rm -rf "$work"; }
trap cleanup EXIT

charts=()
for tgz in "$FIXTURES"/*.tgz; do charts+=("$tgz"); done
release() { local b; b="$(basename "$1" .tgz)"; echo "${b%-*}"; } # name-1.2.3.tgz -> name
{
  echo "clusters: { bench: { provider: local, nodes: 1$(k8s_key) } }"
  echo "components:"
  for c in "${charts[@]}"; do echo "  $(release "$c"): { chart: { path: $c }, namespace: $(release "$c") }"; done
  echo "environments: { bench: { cluster: bench } }"
} > "$work/rekube.yaml"
printf 'clusters: { base: { provider: local, nodes: 1%s } }\nenvironments: { base: { cluster: base } }\n' "$(k8s_key)" > "$work/base.yaml"

cd "$work"
"$REKUBE" up bench > up.log 2>&1 || { cat up.log; exit 1; } # the cluster, and the platform once
"$REKUBE" destroy bench > destroy.log 2>&1 || { cat destroy.log; exit 1; }
"$REKUBE" -f base.yaml up base > up-base.log 2>&1 || { cat up-base.log; exit 1; }

export KUBECONFIG="$work/.rekube/clusters/base/kubeconfig" HELM_CACHE_HOME="$work/helm/cache" \
  HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"
t=$(now)
for c in "${charts[@]}"; do
  run "helm-$(release "$c").log" "$HELM" install "$(release "$c")" "$c" -n "$(release "$c")" --create-namespace --wait --timeout 5m
done
h_install=$(ms $t)
unset KUBECONFIG

t=$(now); run apply.log "$REKUBE" apply bench --timeout 300; r_apply=$(ms $t)
times=()
for _ in $(seq 1 "$PLANS"); do
  t=$(now); run plan.log "$REKUBE" plan bench --detailed-exitcode; times+=("$(ms $t)")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (PLANS + 1) / 2 ))p")
# The issue's figure: an unchanged plan of four real charts (-c selects them).
four=(); for c in "${charts[@]:0:4}"; do four+=(-c "$(release "$c")"); done
times4=()
for _ in $(seq 1 "$PLANS"); do
  t=$(now); run plan4.log "$REKUBE" plan bench "${four[@]}" --detailed-exitcode; times4+=("$(ms $t)")
done
median4=$(printf '%s\n' "${times4[@]}" | sort -n | sed -n "$(( (PLANS + 1) / 2 ))p")
objects=$("$REKUBE" render bench 2>/dev/null | grep -c '^kind:')

echo "chart benchmark: ${#charts[@]} public charts, $objects objects, $(nproc) cores, one test-bed build (${K8S:-newest})"
echo "  first install : helm install --wait, one by one ${h_install} ms | rekube apply (health-gated) ${r_apply} ms ($(ratio $h_install $r_apply)x; goal >= 3x)"
echo "  unchanged plan: all ${#charts[@]} charts, median of $PLANS ${median} ms (runs: ${times[*]} ms)"
echo "                  four charts (${four[*]}), median ${median4} ms (runs: ${times4[*]} ms; goal <= 500 ms)"
