#!/usr/bin/env bash
# Builds the test control plane from the Go module proxy into a cache outside the repository:
#
#   ${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv/
#     k8s-vX.Y.Z/bin/{kube-apiserver,kube-controller-manager,kubectl,etcd}
#     k8s-vX.Y.Z/bin/{kube-scheduler,kubelet,kube-proxy}   only for a node (`node`, `node-bindir`)
#     k8s-vX.Y.Z/module/        generated Go module (go.mod/go.sum) for k8s.io/kubernetes
#     k8s-vX.Y.Z/etcd-module/   generated Go module for go.etcd.io/etcd/server/v3
#     k8s-vX.Y.Z/build.log
#     helm-vA.B.C/bin/helm
#
# Nothing is built that is already there. No Go code of our own is involved: the generated modules
# only require the upstream modules and name their main packages as `tool` directives.
#
# Usage: hack/testenv/build.sh [all|k8s|helm|node|bindir|node-bindir|helm-bindir|k8s-version]
#   all (default)  build whatever is missing, print nothing but progress on stderr
#   node           also build kube-scheduler, kubelet and kube-proxy, from the same release
#   bindir         build if missing, then print the Kubernetes bin dir
#   node-bindir    like bindir, with the node's binaries built too
#   helm-bindir    build if missing, then print the helm bin dir
#   k8s-version    print the Kubernetes release in use (building it if needed)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/testenv/versions.env
. "$HERE/versions.env"

HOME="${HOME:-$(cd ~ && pwd)}"
CACHE_ROOT="${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv"
K8S_CANDIDATES="${FCO_K8S_VERSION:-$K8S_VERSIONS}"
HELM_VERSION="${FCO_HELM_VERSION:-$HELM_VERSION}"

# Two cores: build two packages at a time. Linking kube-apiserver takes 2-4 GB, which is fine.
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
BUILD_P="${FCO_BUILD_PARALLELISM:-2}"

log() { printf '[testenv-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

go_minor() { go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }

# Go >= 1.24 is needed (Kubernetes 1.34+ asks for 1.24/1.25 and Go fetches a newer toolchain from
# the module proxy by itself if a go.mod asks for one). Without Go, or with an older one (Debian's
# golang-go is 1.19, which cannot switch toolchains), install Debian's Go and use it to fetch the
# official toolchain module golang.org/toolchain from the module proxy into the cache.
ensure_go() {
  local minor
  minor=""
  if command -v go >/dev/null 2>&1; then minor="$(go_minor)"; fi
  if [ -n "$minor" ] && [ "$minor" -ge 24 ]; then return 0; fi
  local v="$GO_TOOLCHAIN_VERSION" arch dir src
  dir="$CACHE_ROOT/go$v"
  if [ ! -x "$dir/bin/go" ]; then
    if ! command -v go >/dev/null 2>&1; then
      log "go not found; installing Debian's golang-go to bootstrap Go $v"
      command -v apt-get >/dev/null 2>&1 || die "Go >= 1.24 is required and there is no apt-get"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >&2
    fi
    case "$(uname -m)" in
      x86_64) arch=amd64 ;;
      aarch64 | arm64) arch=arm64 ;;
      *) die "unsupported architecture $(uname -m)" ;;
    esac
    log "fetching Go $v (golang.org/toolchain) from the module proxy"
    src="$(GOFLAGS="" GOTOOLCHAIN=local go mod download -json "golang.org/toolchain@v0.0.1-go$v.linux-$arch" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    if [ -z "$src" ] || [ ! -d "$src" ]; then
      die "cannot download golang.org/toolchain@v0.0.1-go$v.linux-$arch"
    fi
    mkdir -p "$CACHE_ROOT"
    rm -rf "$dir.tmp"
    cp -R "$src" "$dir.tmp"
    chmod -R u+w "$dir.tmp"
    # Module zips carry no file modes.
    chmod +x "$dir.tmp"/bin/* "$dir.tmp"/pkg/tool/*/*
    mv "$dir.tmp" "$dir"
  fi
  export PATH="$dir/bin:$PATH" GOTOOLCHAIN=local
  unset GOROOT
  minor="$(go_minor)"
  if [ -z "$minor" ] || [ "$minor" -lt 24 ]; then
    die "Go >= 1.24 is required; $(command -v go) is $(go env GOVERSION 2>/dev/null)"
  fi
}

# Run a build step with its output in the build log; show the log's tail if it fails.
run_logged() { # logfile cmd...
  local logf=$1; shift
  printf '\n$ %s\n' "$*" >>"$logf"
  if ! "$@" >>"$logf" 2>&1; then
    log "failed: $* (log: $logf); its last lines:"
    tail -n 40 "$logf" >&2
    return 1
  fi
}

version_ldflags() { # vX.Y.Z
  local v=$1 minor
  minor="$(echo "$v" | cut -d. -f2)"
  local pkg flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# Path of the go.mod of a module version in the module cache (downloading it if needed).
gomod_of() { # module@version
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p'
}

# Generate a module that can build the main packages of k8s.io/kubernetes at release $1.
generate_k8s_module() { # version dir logfile
  local v=$1 dir=$2 logf=$3 upstream staging minor patch gover
  minor="$(echo "$v" | cut -d. -f2)"
  patch="$(echo "$v" | cut -d. -f3)"
  upstream="$(gomod_of "k8s.io/kubernetes@$v")"
  if [ -z "$upstream" ] || [ ! -f "$upstream" ]; then
    log "cannot download k8s.io/kubernetes@$v"
    return 1
  fi
  # The release's own go.mod has `k8s.io/NAME => ./staging/src/k8s.io/NAME` for each staging
  # module; staging modules are published as k8s.io/NAME v0.MINOR.PATCH.
  staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$upstream")"
  [ -n "$staging" ] || { log "no staging replace lines found in $upstream"; return 1; }
  gover="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream")"
  mkdir -p "$dir"
  {
    echo "// Generated by hack/testenv/build.sh from k8s.io/kubernetes@$v's go.mod. Do not edit."
    echo "module fastconnect.dev/testenv/k8s"
    echo
    echo "go ${gover:-1.25.0}"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    echo "replace ("
    local name
    for name in $staging; do
      echo "	$name => $name v0.$minor.$patch"
    done
    echo ")"
    echo
    echo "tool ("
    echo "	k8s.io/kubernetes/cmd/kube-apiserver"
    echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
    echo "	k8s.io/kubernetes/cmd/kubectl"
    echo ")"
  } >"$dir/go.mod"
  rm -f "$dir/go.sum"
  log "generated $dir/go.mod ($(echo "$staging" | wc -l) staging replaces); go mod tidy (downloads modules)"
  (cd "$dir" && run_logged "$logf" go mod tidy)
}

# Generate a module that builds etcd's server at version $1 (its go.mod has replace directives,
# so `go install go.etcd.io/etcd/server/v3@v` is refused; requiring it from a module works).
generate_etcd_module() { # version dir logfile
  local v=$1 dir=$2 logf=$3
  mkdir -p "$dir"
  {
    echo "// Generated by hack/testenv/build.sh. Do not edit."
    echo "module fastconnect.dev/testenv/etcd"
    echo
    echo "go 1.24.0"
    echo
    echo "require go.etcd.io/etcd/server/v3 $v"
    echo
    echo "tool go.etcd.io/etcd/server/v3"
  } >"$dir/go.mod"
  rm -f "$dir/go.sum"
  (cd "$dir" && run_logged "$logf" go mod tidy)
}

# Build everything for one Kubernetes release. Returns 2 if kube-apiserver, kubectl or etcd do
# not compile, 1 on other failures (e.g. a download). kube-controller-manager is optional.
build_k8s_version() { # version
  local v=$1 dir="$CACHE_ROOT/k8s-$1" bin logf etcd_v ldflags
  bin="$dir/bin"
  logf="$dir/build.log"
  if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ] &&
    { [ -x "$bin/kube-controller-manager" ] || [ -f "$dir/kcm.failed" ]; }; then
    return 0
  fi
  mkdir -p "$bin"
  log "building Kubernetes $v into $bin (log: $logf); a cold build takes a while"
  local start=$SECONDS
  ldflags="$(version_ldflags "$v")"
  if [ ! -x "$bin/kube-apiserver" ] || [ ! -x "$bin/kubectl" ] ||
    { [ ! -x "$bin/kube-controller-manager" ] && [ ! -f "$dir/kcm.failed" ]; }; then
    if [ ! -f "$dir/module/go.sum" ]; then
      generate_k8s_module "$v" "$dir/module" "$logf" || return 1
    fi
    local pkg name
    for pkg in cmd/kube-apiserver cmd/kubectl cmd/kube-controller-manager; do
      name="$(basename "$pkg")"
      [ -x "$bin/$name" ] && continue
      log "go build k8s.io/kubernetes/$pkg"
      if (cd "$dir/module" && run_logged "$logf" go build -p "$BUILD_P" -trimpath \
        -ldflags "$ldflags" -o "$bin/$name.tmp" "k8s.io/kubernetes/$pkg"); then
        mv -f "$bin/$name.tmp" "$bin/$name"
      else
        rm -f "$bin/$name.tmp"
        if [ "$name" = kube-controller-manager ]; then
          log "kube-controller-manager did not build; continuing without it (no GC/namespace deletion)"
          touch "$dir/kcm.failed"
        else
          return 2
        fi
      fi
    done
  fi
  if [ ! -x "$bin/etcd" ]; then
    etcd_v="$(sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/client/v3 \(v[0-9.]*\).*#\1#p' "$(gomod_of "k8s.io/kubernetes@$v")" | head -n1)"
    [ -n "$etcd_v" ] || { log "k8s.io/kubernetes@$v pins no go.etcd.io/etcd/client/v3"; return 1; }
    log "go build go.etcd.io/etcd/server/v3@$etcd_v"
    if [ ! -f "$dir/etcd-module/go.sum" ]; then
      generate_etcd_module "$etcd_v" "$dir/etcd-module" "$logf" || return 1
    fi
    (cd "$dir/etcd-module" && run_logged "$logf" go build -p "$BUILD_P" -trimpath \
      -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3) || return 2
    mv -f "$bin/etcd.tmp" "$bin/etcd"
    echo "$etcd_v" >"$dir/etcd.version"
  fi
  log "Kubernetes $v built in $((SECONDS - start))s"
}

# kube-scheduler, kubelet and kube-proxy from the same module (and so the same release) as kube-apiserver. They
# need packages the control plane does not (cadvisor, runc's libcontainer); -mod=mod lets the
# build add their sums to the generated module.
build_node_binaries() { # version
  local v=$1 dir="$CACHE_ROOT/k8s-$1" ldflags pkg name
  ldflags="$(version_ldflags "$v")"
  for pkg in cmd/kube-scheduler cmd/kubelet cmd/kube-proxy; do
    name="$(basename "$pkg")"
    [ -x "$dir/bin/$name" ] && continue
    log "go build k8s.io/kubernetes/$pkg (log: $dir/build.log)"
    (cd "$dir/module" && run_logged "$dir/build.log" go build -p "$BUILD_P" -trimpath \
      -ldflags "$ldflags" -o "$dir/bin/$name.tmp" "k8s.io/kubernetes/$pkg") ||
      { rm -f "$dir/bin/$name.tmp"; die "$name did not build"; }
    mv -f "$dir/bin/$name.tmp" "$dir/bin/$name"
  done
}

# Pick the first release of K8S_CANDIDATES that is built or builds; print it.
select_k8s() {
  local v
  for v in $K8S_CANDIDATES; do
    if [ -f "$CACHE_ROOT/k8s-$v/failed" ] && [ -z "${FCO_TESTENV_RETRY:-}" ]; then
      log "skipping $v: it failed to build before (see $CACHE_ROOT/k8s-$v/build.log; FCO_TESTENV_RETRY=1 retries)"
      continue
    fi
    local rc=0
    build_k8s_version "$v" || rc=$?
    if [ $rc -eq 0 ]; then
      rm -f "$CACHE_ROOT/k8s-$v/failed"
      echo "$v"
      return 0
    fi
    # Remember a release that does not compile here; a failed download is tried again next time.
    [ $rc -eq 2 ] && touch "$CACHE_ROOT/k8s-$v/failed"
    log "Kubernetes $v did not build; trying the next release"
  done
  die "no Kubernetes release of [$K8S_CANDIDATES] could be built; see $CACHE_ROOT/k8s-*/build.log"
}

build_helm() {
  local dir="$CACHE_ROOT/helm-$HELM_VERSION" logf
  logf="$dir/build.log"
  [ -x "$dir/bin/helm" ] && return 0
  mkdir -p "$dir/bin"
  log "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION (log: $logf)"
  # helm's go.mod has no replace directives, so `go install pkg@version` works. It runs outside
  # any module (GOFLAGS=-mod=mod is not allowed there).
  (cd "$dir" && GOFLAGS=-buildvcs=false GOBIN="$dir/bin.tmp" run_logged "$logf" go install -p "$BUILD_P" \
    -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") || { rm -rf "$dir/bin.tmp"; return 1; }
  mv -f "$dir/bin.tmp/helm" "$dir/bin/helm"
  rm -rf "$dir/bin.tmp"
}

with_lock() {
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.build.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9 || die "cannot lock $CACHE_ROOT/.build.lock"
  fi
}

main() {
  local cmd="${1:-all}" v
  with_lock
  ensure_go
  case "$cmd" in
    all) select_k8s >/dev/null; build_helm ;;
    k8s) select_k8s >/dev/null ;;
    node) build_node_binaries "$(select_k8s)" ;;
    node-bindir) v="$(select_k8s)"; build_node_binaries "$v"; echo "$CACHE_ROOT/k8s-$v/bin" ;;
    helm) build_helm ;;
    k8s-version) select_k8s ;;
    bindir) echo "$CACHE_ROOT/k8s-$(select_k8s)/bin" ;;
    helm-bindir) build_helm; echo "$CACHE_ROOT/helm-$HELM_VERSION/bin" ;;
    *) die "usage: $0 [all|k8s|helm|node|bindir|node-bindir|helm-bindir|k8s-version]" ;;
  esac
}

main "$@"
