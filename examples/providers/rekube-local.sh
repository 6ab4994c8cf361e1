#!/usr/bin/env bash
# A rekube exec provider (docs/providers.md) that runs a local control plane
# through rekube's own `local` provider. It is the protocol's reference and
# its test: crates/cli/tests/providers.rs drives it.
#
#   clusters:
#     lab: { provider: exec, exec: ./providers/rekube-local.sh }
#
# Request on stdin: {"protocol":"rekube.dev/provider/v1","command":...,"cluster":...,"kubernetes":...,"state_dir":...}
# Answer on stdout: one JSON object. Logs go to stderr.
set -euo pipefail
command="${1:?usage: rekube-local.sh create|delete|status|kubeconfig}"
request="$(cat)"
field() { printf '%s' "$request" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
name="$(field cluster)"
state="$(field state_dir)"
rekube="${REKUBE:-rekube}"
inner="$state/inner"
mkdir -p "$inner"
printf 'clusters: { %s: { provider: local, nodes: 1 } }\nenvironments: { %s: { cluster: %s } }\n' "$name" "$name" "$name" > "$inner/rekube.yaml"
run() { (cd "$inner" && "$rekube" -f rekube.yaml "$@"); }

case "$command" in
  create)
    run up "$name" >&2
    echo '{}'
    ;;
  delete)
    run down "$name" >&2
    echo '{"deleted": true}'
    ;;
  status)
    if run -o json status "$name" 2>/dev/null | grep -q '"state": "running"'; then
      version="$(run -o json status "$name" | sed -n 's/.*"version": "\(v[^"]*\)".*/\1/p' | head -1)"
      printf '{"exists": true, "version": "%s"}\n' "$version"
    else
      echo '{"exists": false}'
    fi
    ;;
  kubeconfig)
    printf '{"kubeconfig_path": "%s"}\n' "$inner/.rekube/clusters/$name/kubeconfig"
    ;;
  *)
    echo "unknown command: $command" >&2
    exit 2
    ;;
esac
