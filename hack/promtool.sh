#!/usr/bin/env bash
# What the chart's monitoring tests need, from the Go module proxy, in the cache
# hack/testenv/build.sh uses. Nothing is fetched or built that is already there.
#
#   ${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv/
#     promtool-vX.Y.Z/bin/promtool     Prometheus's promtool (`promtool check rules`, `test rules`)
#     promtool-vX.Y.Z/build.log
#     prometheus-operator-vA.B.C/crds/ the PrometheusRule and ServiceMonitor CRDs
#
# github.com/prometheus/prometheus has no replace directives, so `go install pkg@version` works.
# Its module versions are v0.3MM.P for Prometheus 3.MM.P. promtool is built with the build tag
# `remove_all_sd`: without the service discovery plugins (AWS, Azure, GCE, Kubernetes, ... SDKs),
# which only `promtool check config` needs, never `check rules` or `test rules`. The full build
# took 15 minutes on 2 cores (940 s of CPU) from a cold module and build cache; FCO_PROMTOOL_TAGS=""
# builds it anyway (into a directory of its own).
# The CRDs are the files of the prometheus-operator module's example/prometheus-operator-crd/.
#
# Go: the `go` on PATH when it is new enough, else the toolchain hack/testenv/build.sh fetched
# into the same cache (hack/test.sh brings the control plane up, and so fetches it, first).
#
# Usage: hack/promtool.sh [promtool|crds]
#   promtool (default)  build if missing, print the path of promtool (the only line on stdout)
#   crds                download if missing, print the directory of the two CRDs
# Environment: FCO_PROMTOOL_VERSION, FCO_PROMTOOL_TAGS, FCO_PROMETHEUS_OPERATOR_VERSION (defaults
# below), FCO_CACHE_DIR, FCO_BUILD_PARALLELISM.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/testenv/versions.env
. "$HERE/testenv/versions.env"

# Prometheus 3.16.0, the newest release on the module proxy when this was written; its go.mod
# asks for Go 1.26.7.
PROMTOOL_VERSION="${FCO_PROMTOOL_VERSION:-v0.316.0}"
GO_MINOR_NEEDED=26
PROMTOOL_TAGS="${FCO_PROMTOOL_TAGS-remove_all_sd}"
# The newest prometheus-operator release on the module proxy when this was written.
PROMETHEUS_OPERATOR_VERSION="${FCO_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"

HOME="${HOME:-$(cd ~ && pwd)}"
CACHE_ROOT="${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv"
BUILD_P="${FCO_BUILD_PARALLELISM:-2}"

log() { printf '[promtool] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }

# A go that can build the module, in $GO: the one on PATH (Go >= 1.21 fetches the toolchain a
# go.mod asks for from the module proxy by itself), else the one hack/testenv/build.sh fetched.
GO=""
find_go() {
  local minor
  if command -v go >/dev/null 2>&1; then
    minor="$(go_minor go)"
    if [ -n "$minor" ] && [ "$minor" -ge 21 ]; then
      GO="$(command -v go)"
      return 0
    fi
  fi
  if [ -x "$CACHE_ROOT/go$GO_TOOLCHAIN_VERSION/bin/go" ]; then
    GO="$CACHE_ROOT/go$GO_TOOLCHAIN_VERSION/bin/go"
    minor="$(go_minor "$GO")"
    [ "${minor:-0}" -ge "$GO_MINOR_NEEDED" ] ||
      die "$GO is Go 1.$minor; promtool $PROMTOOL_VERSION needs 1.$GO_MINOR_NEEDED"
    export GOTOOLCHAIN=local
    unset GOROOT
    return 0
  fi
  die "no Go >= 1.21 on PATH and no toolchain in $CACHE_ROOT: run hack/testenv/build.sh (it fetches one) or install Go"
}

lock() { # dir
  mkdir -p "$1"
  exec 9>"$1/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9 || die "cannot lock $1/.lock"
  fi
}

promtool() {
  local dir="$CACHE_ROOT/promtool-$PROMTOOL_VERSION${PROMTOOL_TAGS:+-${PROMTOOL_TAGS//,/-}}"
  local bin logf start ldflags pkg
  bin="$dir/bin/promtool"
  if [ ! -x "$bin" ]; then
    lock "$dir"
  fi
  # Another process may have built it while this one waited for the lock.
  if [ ! -x "$bin" ]; then
    find_go
    logf="$dir/build.log"
    pkg="github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
    log "go install -tags '$PROMTOOL_TAGS' $pkg (log: $logf)"
    start=$SECONDS
    rm -rf "$dir/bin.tmp"
    ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMTOOL_VERSION#v}"
    ldflags+=" -X github.com/prometheus/common/version.Branch=module-proxy"
    printf '\n$ go install -tags %s %s\n' "'$PROMTOOL_TAGS'" "$pkg" >>"$logf"
    # Outside any module: GOFLAGS=-mod=mod is not allowed there; no cgo.
    if ! (cd "$dir" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$dir/bin.tmp" \
      "$GO" install -p "$BUILD_P" -trimpath -tags "$PROMTOOL_TAGS" -ldflags "$ldflags" "$pkg" >>"$logf" 2>&1); then
      rm -rf "$dir/bin.tmp"
      log "the build failed; the last lines of $logf:"
      tail -n 40 "$logf" >&2
      exit 1
    fi
    mkdir -p "$dir/bin"
    mv -f "$dir/bin.tmp/promtool" "$bin"
    rm -rf "$dir/bin.tmp"
    log "promtool $PROMTOOL_VERSION built in $((SECONDS - start))s"
  fi
  echo "$bin"
}

crds() {
  local dir="$CACHE_ROOT/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" src f
  local files="monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_servicemonitors.yaml"
  if [ ! -f "$dir/crds/.complete" ]; then
    lock "$dir"
  fi
  if [ ! -f "$dir/crds/.complete" ]; then
    find_go
    log "go mod download github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
    src="$(cd "$dir" && GOFLAGS="" "$GO" mod download -json \
      "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    { [ -n "$src" ] && [ -d "$src" ]; } ||
      die "cannot download github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
    rm -rf "$dir/crds.tmp"
    mkdir -p "$dir/crds.tmp"
    for f in $files; do
      [ -f "$src/example/prometheus-operator-crd/$f" ] ||
        die "$src/example/prometheus-operator-crd/$f does not exist"
      cp "$src/example/prometheus-operator-crd/$f" "$dir/crds.tmp/$f"
      chmod u+w "$dir/crds.tmp/$f"
    done
    touch "$dir/crds.tmp/.complete"
    rm -rf "$dir/crds"
    mv "$dir/crds.tmp" "$dir/crds"
  fi
  echo "$dir/crds"
}

case "${1:-promtool}" in
  promtool) promtool ;;
  crds) crds ;;
  *) die "usage: $0 [promtool|crds]" ;;
esac
