#!/usr/bin/env bash
# A rekube exec provider (docs/providers.md) for Amazon EKS through eksctl.
# NOT TESTED HERE: the test machine has no AWS access; the protocol itself is
# tested with examples/providers/rekube-local.sh.
#
#   clusters:
#     prod: { provider: exec, exec: ./providers/eksctl.sh, kubernetes: "1.30" }
#
# Needs eksctl and AWS credentials in the environment. EKS_REGION and
# EKS_NODES (default 2) tune it. Logs go to stderr; answers to stdout.
set -euo pipefail
command="${1:?usage: eksctl.sh create|delete|status|kubeconfig}"
request="$(cat)"
field() { printf '%s' "$request" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
name="$(field cluster)"
version="$(field kubernetes)"
state="$(field state_dir)"
region="${EKS_REGION:-${AWS_REGION:-us-east-1}}"
mkdir -p "$state"

case "$command" in
  create)
    if ! eksctl get cluster --name "$name" --region "$region" >/dev/null 2>&1; then
      args=(create cluster --name "$name" --region "$region" --nodes "${EKS_NODES:-2}" --kubeconfig "$state/kubeconfig")
      [ -n "$version" ] && args+=(--version "$version")
      eksctl "${args[@]}" >&2
    fi
    echo '{}'
    ;;
  delete)
    if eksctl get cluster --name "$name" --region "$region" >/dev/null 2>&1; then
      eksctl delete cluster --name "$name" --region "$region" --wait >&2
      echo '{"deleted": true}'
    else
      echo '{"deleted": false}'
    fi
    ;;
  status)
    if out="$(eksctl get cluster --name "$name" --region "$region" -o json 2>/dev/null)"; then
      v="$(printf '%s' "$out" | sed -n 's/.*"Version": *"\([^"]*\)".*/\1/p' | head -1)"
      printf '{"exists": true, "version": "v%s"}\n' "$v"
    else
      echo '{"exists": false}'
    fi
    ;;
  kubeconfig)
    eksctl utils write-kubeconfig --cluster "$name" --region "$region" --kubeconfig "$state/kubeconfig" >&2
    printf '{"kubeconfig_path": "%s"}\n' "$state/kubeconfig"
    ;;
  *)
    echo "unknown command: $command" >&2
    exit 2
    ;;
esac
