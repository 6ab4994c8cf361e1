#!/usr/bin/env bash
# Blue/green upgrade timing (issue 13) on the example platform
# (examples/platform, provider `local`, binaries cached), all in this script:
# `rekube up prod` of one cluster (the baseline), then the whole upgrade with
# `soak: 0s`: `rekube upgrade prod` (build prod-green, preflight, apply,
# verify, check, traffic 10 -> 50 -> 100 %) and `--finish` (retire prod-blue).
# Goal: upgrade + finish <= 45 s.
#
# Usage: [K8S=1.20|1.34] benches/upgrade.sh   (needs scripts/testbed-setup.sh)
# With K8S=1.20, blue runs 1.20 and the upgrade goes to 1.34 (--kubernetes).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
example_platform
sed -i 's/soak: 30s /soak: 0s  /' rekube.yaml
printf 'clusters: { prod-blue: { provider: local }, prod-green: { provider: local } }\nenvironments: { b: { cluster: prod-blue }, g: { cluster: prod-green } }\n' > cleanup.yaml
trap '(cd "$work" && for e in b g; do "$REKUBE" -f cleanup.yaml down "$e" >/dev/null 2>&1 || true; done); rm -rf "$work"' EXIT
to=()
if [ "${K8S:-}" = "1.20" ]; then to=(--kubernetes 1.34); fi

t=$(now); run up.log "$REKUBE" up prod; up=$(ms $t)
t=$(now); run upgrade.log "$REKUBE" upgrade prod "${to[@]}"; upgrade=$(ms $t)
grep -q "^SHIFTED: 100% of \`prod\` on \`prod-green\`" upgrade.log || { echo "not shifted" >&2; cat upgrade.log >&2; exit 1; }
t=$(now); run finish.log "$REKUBE" upgrade prod --finish; finish=$(ms $t)
grep -q "^FINISHED" finish.log || { echo "not finished" >&2; cat finish.log >&2; exit 1; }
total=$((upgrade + finish))
from=$(grep -o 'Kubernetes v[0-9.]*' up.log | head -1 | cut -d' ' -f2)
into=$(grep -o '(v1\.[0-9.]*)' upgrade.log | head -1 | tr -d '()')
echo "upgrade benchmark: examples/platform, Kubernetes $from -> $into, 1 fake node per cluster, 2 components (8 objects), steps 10/50/100, soak 0s, $(nproc) cores"
echo "  baseline: rekube up prod (one cluster and the platform, health-gated): ${up} ms"
echo "  rekube upgrade prod (build green, preflight, apply, verify, checks, 3 traffic steps): ${upgrade} ms"
echo "  rekube upgrade prod --finish (retire blue): ${finish} ms"
echo "  full upgrade: ${total} ms (goal <= 45000 ms); ratio to one up: $(ratio "$total" "$up")x"
