#!/usr/bin/env bash
# Preview timings (issue 14) on the example platform (examples/platform,
# provider `local`, binaries cached), all in this script: `rekube up dev` of a
# fresh cluster (the baseline: what a preview replaces), then on that running
# cluster `preview up` of 10 previews one after another (each health-gated),
# `preview list`, `preview down` of one (and of one more with --no-wait), and
# `preview gc` of the other eight.
# Goals: preview up <= 10 s to Ready, preview down <= 5 s.
#
# Usage: [K8S=1.20|1.34] benches/previews.sh   (needs scripts/testbed-setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
example_platform

t=$(now); run up.log "$REKUBE" up dev; up=$(ms $t)
ups=()
for i in $(seq 1 10); do
  t=$(now); run "p$i.log" "$REKUBE" preview up "pr-$i" --from dev --set "web.message=pr-$i"; ups+=("$(ms $t)")
done
t=$(now); run list.log "$REKUBE" preview list; list=$(ms $t)
[ "$(grep -c healthy list.log)" = 10 ] || { echo "not 10 healthy previews" >&2; cat list.log >&2; exit 1; }
t=$(now); run again.log "$REKUBE" preview up pr-1 --from dev --set web.message=pr-1; again=$(ms $t)
t=$(now); run down.log "$REKUBE" preview down pr-10; down=$(ms $t)
t=$(now); run down2.log "$REKUBE" preview down pr-9 --no-wait; nowait=$(ms $t)
kubeconfig=.rekube/clusters/dev/kubeconfig
for i in $(seq 1 8); do
  record=$("$KUBECTL" --kubeconfig "$kubeconfig" -n rekube-system get cm -l "rekube.dev/preview=pr-$i" -o name)
  "$KUBECTL" --kubeconfig "$kubeconfig" -n rekube-system patch "$record" --type merge \
    -p '{"data":{"expires":"2000-01-01T00:00:00Z"}}' >/dev/null
done
t=$(now); run gc.log "$REKUBE" preview gc; gc=$(ms $t)
grep -q "deleted: pr-1, pr-2, pr-3, pr-4, pr-5, pr-6, pr-7, pr-8; 0 not expired" gc.log \
  || { echo "gc did not delete the eight" >&2; cat gc.log >&2; exit 1; }
sorted=$(printf '%s\n' "${ups[@]}" | sort -n)
median=$(echo "$sorted" | sed -n 5p); worst=$(echo "$sorted" | tail -1)
echo "preview benchmark: examples/platform, Kubernetes $(grep -o 'Kubernetes v[0-9.]*' up.log | head -1 | cut -d' ' -f2), 1 fake node, 2 components (8 objects, 3 Pods per preview), $(nproc) cores"
echo "  baseline: rekube up dev (a fresh cluster and the platform, health-gated): ${up} ms"
echo "  preview up, 10 previews one after another on that cluster (health-gated): median ${median} ms, slowest ${worst} ms (goal <= 10000 ms); ratio to up: $(ratio "$up" "$median")x faster"
echo "  all ten: ${ups[*]} ms"
echo "  preview up again (update in place): ${again} ms; preview list of 10: ${list} ms"
echo "  preview down (objects, then namespaces gone): ${down} ms; with --no-wait (namespaces terminating): ${nowait} ms (goal <= 5000 ms; kube-controller-manager waits 5 s before it removes a namespace)"
echo "  preview gc of 8 expired previews: ${gc} ms"
