#!/usr/bin/env bash
# Packs the kubectl plugin for krew: builds kubectl-fastconnect as one static binary
# (x86_64-unknown-linux-musl, like the operator's release build), packs
# kubectl-fastconnect-<version>-linux-amd64.tar.gz, and writes the krew manifest
# deploy/krew/fastconnect.yaml with the crate's version, the archive's sha256 and its uri.
# Prints the manifest's path and the archive's path, one per line (the only lines on stdout).
#
# No release is published: the uri is FCO_KREW_URI when set (where the release process uploads
# the archive), else the manifest's placeholder with the version in it. Install without any
# upload:
#
#   kubectl krew install --manifest=OUT_DIR/fastconnect.yaml --archive=OUT_DIR/kubectl-fastconnect-...tar.gz
#
# Usage: hack/krew-package.sh OUT_DIR [BINARY]
#   BINARY  pack this build instead of building the release one (the tests pack their debug build)
# Environment: FCO_KREW_URI, CARGO_TARGET_DIR, FCO_RELEASE_TARGET (default x86_64-unknown-linux-musl).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:?usage: $0 OUT_DIR [BINARY]}"
BINARY="${2:-}"
TARGET="${FCO_RELEASE_TARGET:-x86_64-unknown-linux-musl}"
TEMPLATE="$ROOT/deploy/krew/fastconnect.yaml"

log() { printf '[krew-package] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The workspace's version, the plugin's too ([workspace.package]).
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml")"
[ -n "$version" ] || die "no version in [workspace.package] of $ROOT/Cargo.toml"
tag="v$version"

if [ -z "$BINARY" ]; then
  installed="$(rustup target list --installed 2>/dev/null || true)"
  if ! grep -qx "$TARGET" <<<"$installed"; then
    log "rustup target add $TARGET"
    rustup target add "$TARGET"
  fi
  # ring compiles C and assembly; musl-gcc builds it against musl's headers.
  if [[ "$TARGET" == *-musl ]] && ! command -v musl-gcc >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "musl-gcc is missing (install musl-tools)"
    log "installing musl-tools"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >&2
  fi
  log "cargo build --release --target $TARGET -p kubectl-fastconnect"
  (cd "$ROOT" && CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-symbols}" \
    cargo build --release --locked --target "$TARGET" -p kubectl-fastconnect >&2)
  BINARY="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/kubectl-fastconnect"
fi
[ -x "$BINARY" ] || die "$BINARY is not an executable"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
archive="$OUT/kubectl-fastconnect-$tag-linux-amd64.tar.gz"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$BINARY" "$stage/kubectl-fastconnect"
chmod 0755 "$stage/kubectl-fastconnect"
# Reproducible: fixed owner, mode and time, so the same binary gives the same sha256.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='1970-01-01 00:00:00Z' \
  -C "$stage" -cf - kubectl-fastconnect | gzip -n >"$archive"
sha="$(sha256sum "$archive" | cut -d' ' -f1)"
uri="${FCO_KREW_URI:-https://example.invalid/fastconnect-operator/releases/$tag/$(basename "$archive")}"

# The template's keys are unique, so each is replaced by key; everything else is kept as is.
manifest="$OUT/fastconnect.yaml"
sed -e "s|^\(  version:\).*|\1 $tag|" \
  -e "s|^\(      uri:\).*|\1 $uri|" \
  -e "s|^\(      sha256:\).*|\1 \"$sha\"|" \
  "$TEMPLATE" >"$manifest"
grep -q "sha256: \"$sha\"" "$manifest" || die "could not write the sha256 into $manifest"
log "wrote $manifest (sha256 $sha) and $archive"
echo "$manifest"
echo "$archive"
