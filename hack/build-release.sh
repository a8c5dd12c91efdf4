#!/usr/bin/env bash
# The release build of the operator, as the Dockerfile runs it: one static binary for
# x86_64-unknown-linux-musl (musl's resolver reads /etc/resolv.conf itself, so the binary needs
# no libc, NSS or anything else from the image), copied to OUT_DIR, with its SBOM beside it:
#
#   OUT_DIR/fastconnect-operator            the binary
#   OUT_DIR/fastconnect-operator.cdx.json   CycloneDX 1.5 JSON SBOM of that binary (cargo-cyclonedx)
#
# The SBOM describes the fastconnect-operator binary of the root package, built for the release
# target with default features (the build enables no other; failpoints stay out), without
# dev-dependencies: every crate with its version, licence, purl and Cargo.lock checksum, and the
# dependency edges. Build dependencies (build scripts' crates) are listed with scope "excluded".
# cargo-cyclonedx reads `cargo metadata`, whose feature resolution spans the whole workspace: it
# may list a crate the build does not compile (today jiff-static, jiff's version pin, and
# rand_core 0.10.1); it omits crates compiled only for the build machine's proc-macros (psm,
# stacker, object, ar_archive_writer for pest_derive). hack/check-image.sh checks that every crate
# linked into the binary (`cargo tree -e normal,no-proc-macro`) is in it with its version.
#
# cargo-cyclonedx: FCO_CARGO_CYCLONEDX, else hack/supply-chain.sh (installs the pinned version
# into the tool cache), else `cargo-cyclonedx` on PATH (the Dockerfile's build stage installs it;
# its build context holds no other script). It writes a file beside every workspace member's
# Cargo.toml, so it runs in a scratch copy of the build inputs, never in the working tree.
#
# Usage: hack/build-release.sh OUT_DIR
# Environment: CARGO_TARGET_DIR (default <repo>/target), FCO_RELEASE_TARGET (default
# x86_64-unknown-linux-musl), FCO_CARGO_CYCLONEDX, FCO_SBOM=0 (no SBOM: only for quick local
# builds; hack/check-image.sh fails without it).
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

sbom="$OUT/fastconnect-operator.cdx.json"
rm -f "$sbom"
if [ "${FCO_SBOM:-1}" = 0 ]; then
  log "FCO_SBOM=0: no SBOM"
  exit 0
fi
if [ -n "${FCO_CARGO_CYCLONEDX:-}" ]; then
  cyclonedx="$FCO_CARGO_CYCLONEDX"
elif [ -x "$ROOT/hack/supply-chain.sh" ]; then
  cyclonedx="$("$ROOT/hack/supply-chain.sh" tool cargo-cyclonedx)"
elif command -v cargo-cyclonedx >/dev/null 2>&1; then
  cyclonedx="$(command -v cargo-cyclonedx)"
else
  log "cargo-cyclonedx not found (set FCO_CARGO_CYCLONEDX, or FCO_SBOM=0 for no SBOM)"
  exit 1
fi
# A fixed place under the target directory, not a random one: the SBOM's references to the
# workspace's own crates carry their absolute paths. SOURCE_DATE_EPOCH, when set, is its timestamp.
scratch="$target_dir/sbom-workspace"
rm -rf "$scratch"
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
cp -a Cargo.toml Cargo.lock src benches crates "$scratch/"
# --describe binaries: one SBOM per binary, named <bin>_bin.cdx.json beside its package's
# Cargo.toml; the root package's fastconnect-operator one is kept. Offline: the build has
# downloaded every crate; cargo metadata must not touch Cargo.lock either (compared below).
(cd "$scratch" && CARGO_NET_OFFLINE=true "$cyclonedx" cyclonedx --manifest-path "$scratch/Cargo.toml" \
  --format json --spec-version 1.5 --target "$TARGET" --describe binaries --quiet) >&2
cmp -s "$scratch/Cargo.lock" Cargo.lock || { log "cargo metadata changed Cargo.lock"; exit 1; }
[ -s "$scratch/fastconnect-operator_bin.cdx.json" ] ||
  { log "cargo cyclonedx wrote no fastconnect-operator_bin.cdx.json"; exit 1; }
cp "$scratch/fastconnect-operator_bin.cdx.json" "$sbom"
log "SBOM: $sbom"
