#!/usr/bin/env bash
# Backup benchmark (issue 7): 10,000 objects (9,000 ConfigMaps and 1,000
# Secrets in 10 namespaces) on a local test-bed cluster. Baseline, same
# cluster and same run: `kubectl get <every kind the backup holds> -A -o json`
# into a file, i.e. reading the same objects as JSON. rekube: `backup create`
# to a local directory, Secrets age-encrypted. Also reported: `backup verify`,
# and `backup restore` into a second, empty cluster. Peak memory of rekube
# from /usr/bin/time.
#
# Usage: benches/backup.sh   (needs scripts/testbed-setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh

work="$(mktemp -d)"
cleanup() { (cd "$work" && "$REKUBE" -f cluster.yaml down bench >/dev/null 2>&1 || true; "$REKUBE" -f cluster.yaml down target >/dev/null 2>&1 || true); rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

"$REKUBE" backup keygen > key.txt 2>/dev/null
recipient=$(sed -n 's/^# public key: //p' key.txt)
payload=$(head -c 600 /dev/zero | tr '\0' 'x')
{
  echo "clusters: { bench: { provider: local, nodes: 0 }, target: { provider: local, nodes: 0 } }"
  echo "components:"
  for i in $(seq -w 1 10); do
    echo "  c$i: { manifests: ./c$i, namespace: ns-$i }"
    mkdir -p "c$i"
    for j in $(seq 1 900); do printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%s\ndata:\n  key: "%s %s"\n---\n' "$j" "$payload" "$j"; done > "c$i/configmaps.yaml"
    for j in $(seq 1 100); do printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s-%s\nstringData:\n  password: "secret-%s-%s"\n---\n' "$j" "$i" "$j"; done > "c$i/secrets.yaml"
  done
  echo "environments: { bench: { cluster: bench }, target: { cluster: target } }"
  echo "backup: { store: ./backups, encrypt-secrets: [$recipient] }"
} > rekube.yaml
grep -v '^  c[0-9]' rekube.yaml | sed 's/^components:$/components: {}/' > cluster.yaml

run up.log "$REKUBE" -f cluster.yaml up bench
run up2.log "$REKUBE" -f cluster.yaml up target
run apply.log "$REKUBE" apply bench --no-wait --concurrency 8

KC=(--kubeconfig "$work/.rekube/clusters/bench/kubeconfig")
# Warm both paths once (connection set-up, the API server's caches), then time.
run warm.log "$REKUBE" backup create bench --name warm
kinds=$("$REKUBE" -o json backup describe warm | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["counts"]))')
objects=$("$REKUBE" -o json backup describe warm | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["objects"]))')
"$KUBECTL" "${KC[@]}" get "$kinds" -A -o json > /dev/null
t=$(now); "$KUBECTL" "${KC[@]}" get "$kinds" -A -o json > kubectl.json; k_get=$(ms $t)
t=$(now); run create.log /usr/bin/time -f %M -o rss1 "$REKUBE" backup create bench --name b1; r_create=$(ms $t)
t=$(now); run verify.log /usr/bin/time -f %M -o rss2 "$REKUBE" backup verify b1 -i key.txt; r_verify=$(ms $t)
t=$(now); run restore.log /usr/bin/time -f %M -o rss3 "$REKUBE" backup restore b1 --to target -i key.txt; r_restore=$(ms $t)
grep -q FAILED restore.log && { echo "restore failed:" >&2; tail restore.log >&2; exit 1; }
rss=$(sort -n rss1 rss2 rss3 | tail -1)
size=$(du -k backups/b1/resources.tar.zst | cut -f1)

echo "backup benchmark: $objects objects in the archive ($(nproc) cores, same test-bed cluster, kinds: $kinds)"
echo "  read as JSON : kubectl get -A -o json ${k_get} ms ($(( $(wc -c < kubectl.json) / 1024 )) KiB of JSON)"
echo "  backup create: ${r_create} ms = $(ratio $r_create $k_get)x kubectl (goal <= 1.5x); archive ${size} KiB, Secrets encrypted"
echo "  verify ${r_verify} ms; restore into an empty cluster ${r_restore} ms"
echo "  rekube peak RSS: create $(( $(cat rss1) / 1024 )) MB, verify $(( $(cat rss2) / 1024 )) MB, restore $(( $(cat rss3) / 1024 )) MB (goal < 150 MB)"
