#!/usr/bin/env bash
# The supply-chain checks and the tools they need, from the crates registry, in the cache
# hack/promtool.sh and hack/check-image.sh use. Nothing is built that is already there.
#
#   ${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/tools/
#     cargo-deny-X.Y.Z/bin/cargo-deny            licences, bans, sources (and advisories) of the
#                                                dependency graph against deny.toml
#     cargo-deny-X.Y.Z/install.log
#     cargo-cyclonedx-A.B.C/bin/cargo-cyclonedx  the CycloneDX SBOM hack/build-release.sh writes
#     cargo-cyclonedx-A.B.C/install.log
#
# Each tool is `cargo install --locked` (the tool's own Cargo.lock) of a pinned version, built in a
# target directory of its own that is removed afterwards (not target/, not CARGO_TARGET_DIR, so
# neither waits for nor pollutes the project's builds). A cold install (empty target dir, crates
# already downloaded) costs cargo-deny about 180 s of CPU and cargo-cyclonedx about 160 s: some
# 3 minutes for both on 2 idle cores (measured: 344 s wall for both at once on 2 cores shared with
# a CI run, load 6-7); a second when cached.
#
# Why CI runs only `licenses bans sources`: `advisories` needs the RustSec advisory database, a
# git repository on GitHub that cargo-deny clones; only package registries are reachable from CI's
# machines here. `hack/supply-chain.sh advisories` runs it where the network allows (a developer's
# machine, another CI); with --offline it uses a database fetched before (cargo deny fetch db).
#
# Usage: hack/supply-chain.sh [check [--fetch]|advisories [--offline]|tool NAME]
#   check (default)  cargo deny --locked --offline --workspace check licenses bans sources, with
#                    deny.toml (no network); --fetch: `cargo fetch --locked` first (network)
#   advisories       cargo deny --locked --workspace check advisories (fetches the RustSec
#                    database; --offline: with the copy fetched before)
#   tool NAME        install NAME (cargo-deny or cargo-cyclonedx) if missing, print its path
#                    (the only line on stdout)
# Environment: FCO_CARGO_DENY, FCO_CARGO_CYCLONEDX (use these binaries instead of the cache's),
# FCO_CARGO_DENY_VERSION, FCO_CARGO_CYCLONEDX_VERSION (defaults below), FCO_DENY_CONFIG (default
# <repo>/deny.toml), FCO_CACHE_DIR, FCO_BUILD_PARALLELISM (cargo install -j, default 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The newest releases on the crates registry when this was written (cargo info cargo-deny,
# cargo info cargo-cyclonedx). cargo-deny 0.20.2 needs Rust 1.88, cargo-cyclonedx 0.5.9 1.85.
# The Dockerfile's build stage installs cargo-cyclonedx itself: keep its CARGO_CYCLONEDX_VERSION
# in step (hack/check-image.sh checks that it is).
CARGO_DENY_VERSION="${FCO_CARGO_DENY_VERSION:-0.20.2}"
CARGO_CYCLONEDX_VERSION="${FCO_CARGO_CYCLONEDX_VERSION:-0.5.9}"

HOME="${HOME:-$(cd ~ && pwd)}"
TOOLS="${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/tools"
BUILD_P="${FCO_BUILD_PARALLELISM:-2}"
DENY_CONFIG="${FCO_DENY_CONFIG:-$ROOT/deny.toml}"

log() { printf '[supply-chain] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

lock() { # dir
  mkdir -p "$1"
  exec 9>"$1/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9 || die "cannot lock $1/.lock"
  fi
}

# install_tool CRATE VERSION: prints the path of CRATE's binary of that version, installing it
# from the crates registry if it is not in the cache.
install_tool() {
  local crate=$1 version=$2
  local dir="$TOOLS/$crate-$version"
  local bin="$dir/bin/$crate" logf build start
  if [ ! -x "$bin" ]; then
    lock "$dir"
  fi
  # Another process may have installed it while this one waited for the lock.
  if [ ! -x "$bin" ]; then
    logf="$dir/install.log"
    build="$dir/build.tmp"
    rm -rf "$build"
    log "cargo install --locked $crate@$version (log: $logf)"
    start=$SECONDS
    printf '\n$ cargo install --locked --debug --version %s %s\n' "$version" "$crate" >>"$logf"
    # --root puts bin/ in $dir; --target-dir keeps CARGO_TARGET_DIR (hack/check-image.sh sets one)
    # out of it; RUSTFLAGS and CARGO_BUILD_TARGET of the caller are not the tool's business.
    # --debug, without debug info: the dev profile costs a third of the CPU of the tools' release
    # profiles (measured: cargo-deny 177 s instead of 528 s, its release profile asking for fat
    # LTO and one codegen unit; cargo-cyclonedx 157 s instead of 449 s), and their runs stay
    # short (cargo deny check: 4 s instead of 1.4 s; cargo cyclonedx: 1.5 s, as in release).
    if ! env -u RUSTFLAGS -u CARGO_BUILD_TARGET -u CARGO_ENCODED_RUSTFLAGS \
      CARGO_PROFILE_DEV_DEBUG=false \
      cargo install --locked --quiet --debug --version "$version" --root "$dir" \
      --target-dir "$build" -j "$BUILD_P" "$crate" >>"$logf" 2>&1; then
      rm -rf "$build"
      log "the install failed; the last lines of $logf:"
      tail -n 40 "$logf" >&2
      exit 1
    fi
    rm -rf "$build"
    [ -x "$bin" ] || die "cargo install $crate did not leave $bin"
    log "$crate $version installed in $((SECONDS - start))s"
    printf 'installed in %ss\n' "$((SECONDS - start))" >>"$logf"
  fi
  echo "$bin"
}

cargo_deny() {
  if [ -n "${FCO_CARGO_DENY:-}" ]; then
    [ -x "$FCO_CARGO_DENY" ] || die "FCO_CARGO_DENY=$FCO_CARGO_DENY is not an executable"
    echo "$FCO_CARGO_DENY"
  else
    install_tool cargo-deny "$CARGO_DENY_VERSION"
  fi
}

cargo_cyclonedx() {
  if [ -n "${FCO_CARGO_CYCLONEDX:-}" ]; then
    [ -x "$FCO_CARGO_CYCLONEDX" ] || die "FCO_CARGO_CYCLONEDX=$FCO_CARGO_CYCLONEDX is not an executable"
    echo "$FCO_CARGO_CYCLONEDX"
  else
    install_tool cargo-cyclonedx "$CARGO_CYCLONEDX_VERSION"
  fi
}

# `licenses bans sources` need only Cargo.lock, the manifests and the sources of the crates a Linux
# build downloads (deny.toml's [graph] names one target, so cargo-deny asks `cargo metadata` for
# that platform only): --offline keeps cargo metadata and cargo-deny off the network, --locked
# fails instead of changing Cargo.lock. In CI the builds before this step have downloaded every
# crate; on a fresh clone `check --fetch` downloads them first (from crates.io: not offline).
# --workspace: every crate of the workspace is a root of the graph, not only the root package.
# Extra arguments go to `cargo deny check` (e.g. --hide-inclusion-graph).
check() {
  local deny
  deny="$(cargo_deny)"
  [ -f "$DENY_CONFIG" ] || die "$DENY_CONFIG does not exist"
  cd "$ROOT"
  if [ "${1:-}" = --fetch ]; then
    shift
    cargo fetch --locked --target x86_64-unknown-linux-gnu
  fi
  "$deny" --locked --offline --workspace --color never --config "$DENY_CONFIG" \
    check "$@" licenses bans sources
}

# Needs the network (the RustSec database is cloned from GitHub into $CARGO_HOME/advisory-dbs)
# unless --offline, which uses the copy fetched before (`cargo deny fetch db`).
advisories() {
  local deny offline=()
  deny="$(cargo_deny)"
  cd "$ROOT"
  if [ "${1:-}" = --offline ]; then
    offline=(--offline)
    shift
  fi
  if ! "$deny" --locked "${offline[@]}" --workspace --color never --config "$DENY_CONFIG" \
    check "$@" advisories; then
    log "advisories failed: either an advisory above, or no RustSec database (it is cloned from"
    log "https://github.com/rustsec/advisory-db; --offline uses a copy fetched before)"
    exit 1
  fi
}

case "${1:-check}" in
  check) shift || true; check "$@" ;;
  advisories) shift; advisories "$@" ;;
  tool)
    case "${2:-}" in
      cargo-deny) cargo_deny ;;
      cargo-cyclonedx) cargo_cyclonedx ;;
      *) die "usage: $0 tool cargo-deny|cargo-cyclonedx" ;;
    esac
    ;;
  *) die "usage: $0 [check [--fetch]|advisories [--offline]|tool cargo-deny|cargo-cyclonedx]" ;;
esac
