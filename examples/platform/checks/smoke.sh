#!/bin/sh
# A check of `rekube upgrade prod`: on the new cluster ($KUBECONFIG), every
# replica of web and app is ready. rekube runs it before any traffic moves
# and throughout each soak; a failure moves all traffic back.
set -eu
kubectl="${KUBECTL:-kubectl}"
for d in web/web app/app; do
  ns="${d%/*}" name="${d#*/}"
  want="$("$kubectl" get deploy "$name" -n "$ns" -o 'jsonpath={.spec.replicas}')"
  ready="$("$kubectl" get deploy "$name" -n "$ns" -o 'jsonpath={.status.readyReplicas}')"
  if [ "${ready:-0}" != "$want" ]; then
    echo "$ns/$name: ${ready:-0} of $want replicas ready on $REKUBE_COLOR" >&2
    exit 1
  fi
done
