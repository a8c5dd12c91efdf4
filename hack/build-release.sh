#!/usr/bin/env bash
# The release build of the operator, as the Dockerfile runs it: one static binary for
# x86_64-unknown-linux-musl (musl's resolver reads /etc/resolv.conf itself, so the binary needs
# no libc, NSS or anything else from the image), copied to OUT_DIR.
#
# Usage: hack/build-release.sh OUT_DIR
# Environment: CARGO_TARGET_DIR (default <repo>/target), FCO_RELEASE_TARGET (default
# x86_64-unknown-linux-musl).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${FCO_RELEASE_TARGET:-x86_64-unknown-linux-musl}"
OUT="${1:?usage: $0 OUT_DIR}"

log() { printf '[build-release] %s\n' "$*" >&2; }

# Captured first: `rustup ... | grep -q` could trip pipefail if grep stopped reading early.
installed="$(rustup target list --installed 2>/dev/null || true)"
if ! grep -qx "$TARGET" <<<"$installed"; then
  log "rustup target add $TARGET"
  rustup target add "$TARGET"
fi
# ring compiles C and assembly; musl-gcc builds it against musl's headers.
if [[ "$TARGET" == *-musl ]] && ! command -v musl-gcc >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || { log "musl-gcc is missing (install musl-tools)"; exit 1; }
  log "installing musl-tools"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >&2
fi

cd "$ROOT"
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-symbols}"
cargo build --release --locked --target "$TARGET" --bin fastconnect-operator
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$OUT"
cp "$target_dir/$TARGET/release/fastconnect-operator" "$OUT/fastconnect-operator"
log "built $OUT/fastconnect-operator"
