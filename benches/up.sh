#!/usr/bin/env bash
# Clusters-as-code timings (issue 6) on the example platform (examples/platform,
# environment `dev`, provider `local`, binaries cached): `up` of a fresh
# cluster, `up` again (nothing to do), `down`, and a full `rebuild-check`
# (fingerprint, down, up with fresh renders, compare). No baseline tool does
# the same job; the goal is `up` in 20 s or less.
#
# Usage: [K8S=1.20|1.34] benches/up.sh   (needs scripts/testbed-setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
example_platform

t=$(now); run up.log "$REKUBE" up dev; up=$(ms $t)
t=$(now); run up2.log "$REKUBE" up dev; again=$(ms $t)
grep -q "no changes" up2.log || { echo "second up was not a no-op" >&2; exit 1; }
t=$(now); run rc.log "$REKUBE" rebuild-check dev; rc=$(ms $t)
grep -q IDENTICAL rc.log || { echo "rebuild-check did not pass" >&2; cat rc.log >&2; exit 1; }
t=$(now); run down.log "$REKUBE" down dev; down=$(ms $t)
echo "up/down benchmark: examples/platform, env dev (local provider, Kubernetes $(grep -o 'Kubernetes v[0-9.]*' up.log | head -1 | cut -d' ' -f2), 1 fake node, 2 components), $(nproc) cores"
echo "  up (fresh cluster, health-gated): ${up} ms (goal <= 20000 ms); up again: ${again} ms"
echo "  down (a local cluster: its processes stopped, its directory deleted): ${down} ms (goal <= 2000 ms)"
echo "  rebuild-check (fingerprint, down, up, compare): ${rc} ms; $(grep -o '[0-9]* objects' rc.log | head -1) compared"
