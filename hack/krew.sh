#!/usr/bin/env bash
# Builds krew, the kubectl plugin manager, from the Go module proxy into the cache that
# hack/testenv/build.sh uses, and prints its path (the only line on stdout). Nothing is built that
# is already there. tests of crates/kubectl-fastconnect install the plugin with it.
#
#   ${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv/krew-vX.Y.Z/bin/krew
#   ${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv/krew-vX.Y.Z/build.log
#
# sigs.k8s.io/krew has no replace directives, so `go install pkg@version` works (about 20 s on
# 2 cores with a cold module cache).
#
# Go: the `go` on PATH when it is new enough, else the toolchain hack/testenv/build.sh fetched
# into the same cache.
#
# Usage: hack/krew.sh          build if missing, print the path of krew
# Environment: FCO_KREW_VERSION (default below), FCO_CACHE_DIR, FCO_BUILD_PARALLELISM.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/testenv/versions.env
. "$HERE/testenv/versions.env"

# The newest krew release on the module proxy when this was written.
KREW_VERSION="${FCO_KREW_VERSION:-v0.4.3}"

HOME="${HOME:-$(cd ~ && pwd)}"
CACHE_ROOT="${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv"
DIR="$CACHE_ROOT/krew-$KREW_VERSION"
BIN="$DIR/bin/krew"
BUILD_P="${FCO_BUILD_PARALLELISM:-2}"

log() { printf '[krew] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }

# A go that can build the module: the one on PATH, else the one hack/testenv/build.sh fetched.
GO=""
if command -v go >/dev/null 2>&1; then
  minor="$(go_minor go)"
  if [ -n "$minor" ] && [ "$minor" -ge 21 ]; then GO="$(command -v go)"; fi
fi
if [ -z "$GO" ] && [ -x "$CACHE_ROOT/go$GO_TOOLCHAIN_VERSION/bin/go" ]; then
  GO="$CACHE_ROOT/go$GO_TOOLCHAIN_VERSION/bin/go"
  export GOTOOLCHAIN=local
  unset GOROOT
fi
[ -n "$GO" ] || die "no Go >= 1.21 on PATH and no toolchain in $CACHE_ROOT: run hack/testenv/build.sh (it fetches one) or install Go"

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || die "cannot lock $DIR/.lock"
fi
# Another process may have built it while this one waited for the lock.
if [ ! -x "$BIN" ]; then
  logf="$DIR/build.log"
  pkg="sigs.k8s.io/krew/cmd/krew@$KREW_VERSION"
  log "go install $pkg (log: $logf)"
  start=$SECONDS
  rm -rf "$DIR/bin.tmp"
  printf '\n$ go install %s\n' "$pkg" >>"$logf"
  # Outside any module: GOFLAGS=-mod=mod is not allowed there; no cgo.
  if ! (cd "$DIR" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$DIR/bin.tmp" \
    "$GO" install -p "$BUILD_P" -trimpath -ldflags "-s -w" "$pkg" >>"$logf" 2>&1); then
    rm -rf "$DIR/bin.tmp"
    log "the build failed; the last lines of $logf:"
    tail -n 40 "$logf" >&2
    exit 1
  fi
  mkdir -p "$DIR/bin"
  mv -f "$DIR/bin.tmp/krew" "$BIN"
  rm -rf "$DIR/bin.tmp"
  log "krew $KREW_VERSION built in $((SECONDS - start))s"
fi
echo "$BIN"
