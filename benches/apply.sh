#!/usr/bin/env bash
# Apply benchmark (issue 4): a 30-component platform, ~2,000 objects
# (ConfigMaps, Deployments, Services in 30 namespaces), on a local test-bed
# cluster. Baseline, same cluster and same run: `kubectl apply --server-side`
# of the identical rendered manifests (first apply, re-apply), and
# `kubectl diff --server-side`. rekube: apply (first), plan and apply of the
# unchanged platform. kubectl does not wait for health, so rekube's first
# apply is measured with --no-wait as the like-for-like figure, and also with
# its health gates. Peak memory of rekube from /usr/bin/time.
#
# Usage: [K8S=1.20|1.34] benches/apply.sh   (needs scripts/testbed-setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh

work="$(mktemp -d)"
cleanup() { (cd "$work" && "$REKUBE" down bench >/dev/null 2>&1 || true); (cd "$work" && "$REKUBE" -f base.yaml down base >/dev/null 2>&1 || true); rm -rf "$work"; }
trap cleanup EXIT

gen_component() { # dir n
  local d="$1" n="$2"
  mkdir -p "$d"
  for j in $(seq 1 40); do printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%s\ndata:\n  key: "value %s of %s"\n---\n' "$j" "$j" "$n"; done > "$d/configmaps.yaml"
  for j in $(seq 1 13); do
    printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%s\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: app-%s}\n  template:\n    metadata:\n      labels: {app: app-%s}\n    spec:\n      containers:\n        - name: app\n          image: nginx:1.25\n          ports: [{containerPort: 80}]\n---\n' "$j" "$j" "$j"
    printf 'apiVersion: v1\nkind: Service\nmetadata:\n  name: app-%s\nspec:\n  selector: {app: app-%s}\n  ports: [{port: 80, protocol: TCP}]\n---\n' "$j" "$j"
  done > "$d/apps.yaml"
}
{
  echo "clusters: { bench: { provider: local, nodes: 1$(k8s_key) } }"
  echo "components:"
  for i in $(seq -w 1 30); do echo "  c$i: { manifests: ./c$i, namespace: ns-$i }"; gen_component "$work/c$i" "$i"; done
  echo "environments: { bench: { cluster: bench } }"
} > "$work/rekube.yaml"
sed 's/bench/base/g' "$work/rekube.yaml" > "$work/base.yaml"
# `rekube up` applies the platform too: create the clusters from specs
# without components, so the timed apply below is really the first.
printf 'clusters: { bench: { provider: local, nodes: 1%s } }\nenvironments: { bench: { cluster: bench } }\n' "$(k8s_key)" > "$work/bench-cluster.yaml"
printf 'clusters: { base: { provider: local, nodes: 1%s } }\nenvironments: { base: { cluster: base } }\n' "$(k8s_key)" > "$work/base-cluster.yaml"

cd "$work"
"$REKUBE" -f bench-cluster.yaml up bench > up.log 2>&1 || { cat up.log; exit 1; }
"$REKUBE" -f base-cluster.yaml up base > up.log 2>&1 || { cat up.log; exit 1; }
"$REKUBE" render bench > rendered.yaml 2>/dev/null
objects=$(grep -c '^kind:' rendered.yaml)
KC=(--kubeconfig "$work/.rekube/clusters/base/kubeconfig")

t=$(now); "$KUBECTL" "${KC[@]}" apply --server-side -f rendered.yaml >/dev/null; k_first=$(ms $t)
t=$(now); "$KUBECTL" "${KC[@]}" apply --server-side -f rendered.yaml >/dev/null; k_again=$(ms $t)
t=$(now); "$KUBECTL" "${KC[@]}" diff --server-side -f rendered.yaml >/dev/null || true; k_diff=$(ms $t)

count() { "$KUBECTL" --kubeconfig "$work/.rekube/clusters/bench/kubeconfig" get cm,deploy,svc,ns -A -l applyset.kubernetes.io/part-of --no-headers | wc -l; }
t=$(now); run apply1.log /usr/bin/time -f %M -o rss1 "$REKUBE" apply bench --no-wait --concurrency 8; r_first=$(ms $t)
grep -q "$objects written" apply1.log || { echo "first apply did not write $objects objects:" >&2; tail -3 apply1.log >&2; exit 1; }
[ "$(count)" -eq "$objects" ] || { echo "cluster holds $(count) rekube objects, expected $objects" >&2; exit 1; }
t=$(now); run plan.log /usr/bin/time -f %M -o rss2 "$REKUBE" plan bench --detailed-exitcode; r_plan=$(ms $t)
t=$(now); run apply2.log /usr/bin/time -f %M -o rss3 "$REKUBE" apply bench --concurrency 8; r_again=$(ms $t)
grep -q "no changes" apply2.log || { echo "re-apply was not a no-op" >&2; exit 1; }
t=$(now); run drift.log /usr/bin/time -f %M -o rss4 "$REKUBE" drift bench; r_drift=$(ms $t)
t=$(now); run destroy.log "$REKUBE" destroy bench; r_destroy=$(ms $t)
t=$(now); run apply3.log "$REKUBE" apply bench --concurrency 8; r_health=$(ms $t)
rss=$(sort -n rss1 rss2 rss3 rss4 | tail -1)

echo "apply benchmark: 30 components, $objects objects, $(nproc) cores, same test-bed control plane build"
echo "  first apply : kubectl ${k_first} ms | rekube --no-wait ${r_first} ms ($(ratio $k_first $r_first)x; goal >= 5x) | rekube with health gates ${r_health} ms"
echo "  unchanged   : kubectl re-apply ${k_again} ms, kubectl diff ${k_diff} ms | rekube plan ${r_plan} ms, rekube apply ${r_again} ms (goal <= 1500 ms), rekube drift ${r_drift} ms (goal <= 1500 ms)"
echo "  rekube peak RSS: $((rss / 1024)) MB (goal < 150 MB); destroy (waiting until 30 namespaces are gone): ${r_destroy} ms"
