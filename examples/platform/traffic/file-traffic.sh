#!/usr/bin/env bash
# A rekube traffic program (the exec side of `blue-green.traffic`) that keeps
# the split in a file: $state_dir/traffic.json. It splits no real traffic; it
# is the protocol's reference and its test (crates/cluster/tests/traffic.rs
# drives it). A real one would call a DNS or load balancer API instead.
#
#   environments:
#     prod:
#       blue-green:
#         clusters: [prod-blue, prod-green]
#         traffic: { exec: ./traffic/file-traffic.sh }
#
# rekube runs `file-traffic.sh COMMAND` from the spec's directory with one
# JSON request on stdin:
#   {"protocol":"rekube.dev/traffic/v1","command":"read"|"set"|"remove",
#    "environment":...,"record":...|null,"state_dir":...,"colors":[...]}
# plus, for `set`, "targets":[{"color":...,"address":...|null,"weight":0..100}]
# and, for `remove`, "color":....
# It answers one JSON object on stdout:
#   read   -> {"targets":[{"color":...,"address":...,"weight":...}]}
#             (only the colors asked for; a color left out has weight 0)
#   set    -> {} once every target is in effect (a null address keeps the
#             color's current one); colors not in targets stay as they are
#   remove -> {} once the color's share is gone (already gone is fine)
# Logs go to stderr; a non-zero exit is a failure.
#
# traffic.json holds {"targets":[...]} with one target per line, so that sed
# and grep can edit it without jq.
set -euo pipefail
request="$(cat)"
# The value of a string field of the request (the last one of that name).
field() { printf '%s' "$request" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
command="$(field command)"
command="${command:-${1:-}}"
protocol="$(field protocol)"
if [ "$protocol" != "rekube.dev/traffic/v1" ]; then
  echo "file-traffic.sh: unsupported protocol '$protocol'" >&2
  exit 2
fi
state="$(field state_dir)"
file="$state/traffic.json"

# The stored targets, one JSON object a line.
stored() {
  if [ -f "$file" ]; then
    { grep '^{"color":' "$file" || true; } | sed 's/,$//'
  fi
}
# The stored line of color $1.
line_of() { stored | grep -F "{\"color\":\"$1\"," || true; }
# Writes lines from stdin as the new traffic.json, atomically.
store() {
  local lines
  lines="$(cat)"
  {
    echo '{"targets":['
    if [ -n "$lines" ]; then printf '%s\n' "$lines" | sed '$!s/$/,/'; fi
    echo ']}'
  } > "$file.tmp"
  mv "$file.tmp" "$file"
}
# Lines of a JSON array of objects ($1: the request's field name).
objects() {
  local array
  array="$(printf '%s' "$request" | sed -n "s/.*\"$1\":\\[\\([^]]*\\)\\].*/\\1/p")"
  [ -n "$array" ] || return 0
  printf '%s\n' "$array" | sed 's/},{/}\
{/g'
}
# The address of a target line: a JSON string, or null.
address_of() {
  local a
  a="$(printf '%s' "$1" | sed -n 's/.*"address":\("[^"]*"\).*/\1/p')"
  printf '%s' "${a:-null}"
}
# The colors of the request, one a line.
colors() {
  printf '%s' "$request" | sed -n 's/.*"colors":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' \
    | sed 's/^"//; s/"$//' | grep . || true
}

case "$command" in
  read)
    answer=""
    while IFS= read -r color; do
      line="$(line_of "$color")"
      if [ -n "$line" ]; then answer="${answer:+$answer,}$line"; fi
    done < <(colors)
    printf '{"targets":[%s]}\n' "$answer"
    ;;
  set)
    new=""
    changed=" "
    while IFS= read -r target; do
      color="$(printf '%s' "$target" | sed -n 's/.*"color":"\([^"]*\)".*/\1/p')"
      weight="$(printf '%s' "$target" | sed -n 's/.*"weight":\([0-9]*\).*/\1/p')"
      address="$(address_of "$target")"
      if [ -z "$color" ] || [ -z "$weight" ] || [ "$weight" -gt 100 ]; then
        echo "file-traffic.sh: bad target $target" >&2
        exit 2
      fi
      if [ "$address" = null ]; then
        # No address: keep the one the color has.
        address="$(address_of "$(line_of "$color")")"
      fi
      new="$new{\"color\":\"$color\",\"address\":$address,\"weight\":$weight}"$'\n'
      changed="$changed$color "
      echo "file-traffic.sh: $color -> $weight% ($address)" >&2
    done < <(objects targets)
    mkdir -p "$state"
    # Kept colors first, then the new targets; written in one rename.
    {
      stored | while IFS= read -r line; do
        color="$(printf '%s' "$line" | sed -n 's/.*"color":"\([^"]*\)".*/\1/p')"
        case "$changed" in *" $color "*) ;; *) printf '%s\n' "$line" ;; esac
      done
      printf '%s' "$new"
    } | store
    echo '{}'
    ;;
  remove)
    color="$(field color)"
    if [ -z "$color" ]; then
      echo "file-traffic.sh: remove without a color" >&2
      exit 2
    fi
    if [ -n "$(line_of "$color")" ]; then
      { stored | grep -vF "{\"color\":\"$color\"," || true; } | store
      echo "file-traffic.sh: removed $color" >&2
    fi
    echo '{}'
    ;;
  *)
    echo "file-traffic.sh: unknown command '$command'" >&2
    exit 2
    ;;
esac
