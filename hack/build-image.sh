#!/usr/bin/env bash
# Builds the operator's OCI image without a container engine and without a base image, as an
# OCI image archive that `ctr -n k8s.io images import` (containerd 1.6+) accepts, for the test
# node (no registry is reachable here, so gcr.io/distroless cannot be pulled).
#
# Usage: hack/build-image.sh [--tag TAG] [--repository REPO] [--out FILE]   (also: make image)
#   --tag         default: the chart's appVersion (deploy/helm/fastconnect-operator/Chart.yaml),
#                 which is the tag the chart's default image resolves to
#   --repository  default: fastconnect-operator (the chart's image.repository); normalised as
#                 the kubelet does (fastconnect-operator -> docker.io/library/fastconnect-operator)
#   --out         default: <repo>/target/image/fastconnect-operator-oci.tar
# Prints the archive's path and the image reference on stdout (two lines); logs go to stderr.
# Environment: CARGO_TARGET_DIR (default <repo>/target/image, shared with hack/check-image.sh),
# FCO_CACHE_DIR (default ~/.cache/fastconnect-operator; the Debian packages are kept in
# image-debs/ there), SOURCE_DATE_EPOCH (default: the last commit's time; the time stamped on
# the image and clamped onto its files, so a rebuild of the same inputs gives the same digests).
# Tools: umoci, jq, dpkg-deb, apt-get, GNU tar (apt-get installed when missing).
#
# What is THE SAME as the Dockerfile's image (gcr.io/distroless/static-debian12:nonroot plus the
# binary):
#   - the binary: hack/build-release.sh, the script the Dockerfile's build stage runs (static
#     x86_64-unknown-linux-musl, stripped), copied to /fastconnect-operator, mode 0755, root-owned;
#   - the config: User 65532:65532, Entrypoint ["/fastconnect-operator"], no Cmd, ExposedPorts
#     8080/tcp, WorkingDir /home/nonroot and Env PATH and SSL_CERT_FILE (both inherited from
#     distroless), the Dockerfile's org.opencontainers.image.{title,description,licenses} labels
#     (read from the Dockerfile), linux/amd64;
#   - the file system, built the way distroless builds static-debian12 (its static/static.bzl
#     and common/BUILD.bazel): the data of Debian 12's base-files, netbase (/etc/services,
#     protocols, rpc, ethertypes), tzdata (/usr/share/zoneinfo) and media-types (/etc/mime.types);
#     /etc/ssl/certs/ca-certificates.crt made of the certificates in Debian's ca-certificates;
#     distroless's /etc/passwd (root 0, nobody 65534, nonroot 65532 with home /home/nonroot, all
#     /sbin/nologin), /etc/group (root, nobody, tty, staff, nonroot) and /etc/nsswitch.conf;
#     /root 0700, /home 0755, /home/nonroot 0700 owned by 65532:65532, /tmp 1777; the package
#     records in /var/lib/dpkg/status.d/ that image scanners read.
# What DIFFERS:
#   - the Debian packages are the versions this machine's apt sources offer today (Debian
#     bookworm with its security updates), not the ones pinned by the distroless release;
#   - /usr/lib/os-release (and so /etc/os-release) keeps distroless's keys and Debian version but
#     says PRETTY_NAME="Debian GNU/Linux 12 (bookworm), distroless-style (hack/build-image.sh)"
#     and carries no distroless URLs;
#   - layers: two (the file system, then the binary) instead of distroless's several plus one;
#     history entries and annotations name this script; timestamps are SOURCE_DATE_EPOCH;
#   - not built from the Docker build context: the release build runs in the working tree (the
#     .dockerignore allow-list is checked by hack/check-image.sh, not here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/image}"
DEBS_DIR="$CACHE/image-debs"
# The Debian packages whose data distroless static puts in the image, and ca-certificates
# (of which distroless keeps only the bundle and the copyright).
PACKAGES=(base-files netbase tzdata media-types)
NONROOT=65532
NOBODY=65534

log() { printf '[build-image] %s\n' "$*" >&2; }
die() {
  log "FAILED: $*"
  exit 1
}

usage() { sed -n '6,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }

tag=""
repository="fastconnect-operator"
out="$CARGO_TARGET_DIR/fastconnect-operator-oci.tar"
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --tag=*) tag="${1#*=}"; shift ;;
    --repository) repository="${2:?--repository needs a value}"; shift 2 ;;
    --repository=*) repository="${1#*=}"; shift ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
done

ensure_tools() {
  local missing=() t
  for t in umoci jq dpkg-deb apt-get tar; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  # Captured first: `tar --version | grep -q` could trip pipefail if grep stopped reading early.
  if command -v tar >/dev/null 2>&1 && [[ "$(tar --version 2>/dev/null)" != *"GNU tar"* ]]; then
    die "tar is not GNU tar (needed for --sort, --clamp-mtime and --owner)"
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  case " ${missing[*]} " in *" apt-get "*) die "missing tools: ${missing[*]} (and no apt-get)" ;; esac
  local pkgs=()
  for t in "${missing[@]}"; do
    case "$t" in
      dpkg-deb) pkgs+=(dpkg) ;;
      *) pkgs+=("$t") ;;
    esac
  done
  log "installing ${pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
}

# The reference the kubelet pulls for REPO:TAG: a name without a registry is on docker.io, and a
# docker.io name without a namespace is in library/.
normalise_ref() {
  local repo=$1 tag=$2 first rest
  first="${repo%%/*}"
  if [ "$first" = "$repo" ]; then
    repo="docker.io/library/$repo"
  elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
    repo="docker.io/$repo"
  fi
  rest="${repo#*/}"
  if [ "${repo%%/*}" = docker.io ] && [[ "$rest" != */* ]]; then
    repo="docker.io/library/$rest"
  fi
  printf '%s:%s\n' "$repo" "$tag"
}

# Fills DEB[package] with the path of the cached .deb of each PACKAGE (the candidate version of
# this machine's apt sources), downloading what is not cached yet. One apt-cache call: each one
# reads all the package lists (a second and a half here).
declare -A DEB=()
fetch_debs() {
  local pkg filename listing
  listing="$(apt-cache show --no-all-versions "$@" 2>/dev/null | sed -n 's/^\(Package\|Filename\): //p')" || true
  if [ "$(wc -l <<<"$listing")" -ne $((2 * $#)) ]; then
    log "apt-get update (the package lists do not know all of: $*)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    listing="$(apt-cache show --no-all-versions "$@" 2>/dev/null | sed -n 's/^\(Package\|Filename\): //p')" || true
  fi
  while read -r pkg && read -r filename; do
    DEB[$pkg]="$DEBS_DIR/$(basename "$filename")"
  done <<<"$listing"
  for pkg in "$@"; do
    [ -n "${DEB[$pkg]:-}" ] || die "apt knows no package $pkg"
    [ -s "${DEB[$pkg]}" ] && continue
    log "apt-get download $pkg"
    # As root, apt drops to the _apt user to download, which cannot write to our cache.
    (cd "$DEBS_DIR" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$pkg" >&2) ||
      die "cannot download $pkg"
    [ -s "${DEB[$pkg]}" ] || die "apt-get download $pkg did not write $(basename "${DEB[$pkg]}")"
  done
}

# Records a package's control fields (and, with md5sums, its files' checksums) where distroless
# puts them for image scanners.
record_package() {
  local deb=$1 rootfs=$2 md5sums=${3:-} pkg
  pkg="$(dpkg-deb -f "$deb" Package)"
  mkdir -p "$rootfs/var/lib/dpkg/status.d"
  dpkg-deb -f "$deb" >"$rootfs/var/lib/dpkg/status.d/$pkg"
  # dpkg-deb -f prints the control file without its trailing blank line.
  echo >>"$rootfs/var/lib/dpkg/status.d/$pkg"
  [ "$md5sums" = md5sums ] || return 0
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./md5sums >"$rootfs/var/lib/dpkg/status.d/$pkg.md5sums" 2>/dev/null ||
    rm -f "$rootfs/var/lib/dpkg/status.d/$pkg.md5sums"
}

# The Dockerfile's value of a LABEL key (the labels are kept in the Dockerfile only).
dockerfile_label() {
  local value
  value="$(sed -n '/^LABEL /,/[^\\]$/p' "$ROOT/Dockerfile" | grep -o "$1=\"[^\"]*\"" | head -n1)" ||
    die "the Dockerfile has no LABEL $1"
  value="${value#*=\"}"
  echo "${value%\"}"
}

# Fails if the Dockerfile's final stage no longer says what this script builds.
check_dockerfile() {
  local line
  for line in 'FROM gcr.io/distroless/static-debian12:nonroot' \
    'COPY --from=build /out/fastconnect-operator /fastconnect-operator' \
    'USER 65532:65532' 'EXPOSE 8080' 'ENTRYPOINT ["/fastconnect-operator"]' \
    '    hack/build-release.sh /out'; do
    grep -qxF "$line" "$ROOT/Dockerfile" ||
      die "the Dockerfile no longer has '$line'; keep hack/build-image.sh in step with it"
  done
}

ensure_tools
check_dockerfile
start_all=$SECONDS

case "${FCO_RELEASE_TARGET:-x86_64-unknown-linux-musl}" in
  x86_64-*) arch=amd64 ;;
  aarch64-*) arch=arm64 ;;
  *) die "no image architecture for FCO_RELEASE_TARGET=$FCO_RELEASE_TARGET" ;;
esac
version="$(sed -n 's/^version *= *"\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n1)"
[ -n "$version" ] || die "no version in Cargo.toml"
if [ -z "$tag" ]; then
  tag="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' \
    "$ROOT/deploy/helm/fastconnect-operator/Chart.yaml" | head -n1)"
  [ -n "$tag" ] || die "no appVersion in the chart's Chart.yaml; pass --tag"
fi
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "not a valid tag: $tag"
ref="$(normalise_ref "$repository" "$tag")"
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p "$CARGO_TARGET_DIR/oci" "$DEBS_DIR"
work="$(mktemp -d "$CARGO_TARGET_DIR/oci/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# 1. The binary, exactly as the Dockerfile's build stage makes it.
start=$SECONDS
"$ROOT/hack/build-release.sh" "$work/out" >&2
log "release build took $((SECONDS - start))s"
bin="$work/out/fastconnect-operator"
[ -x "$bin" ] || die "hack/build-release.sh wrote no $bin"

# 2. The file system distroless static-debian12 is made of, from Debian's packages.
start=$SECONDS
rootfs="$work/rootfs"
mkdir -p "$rootfs"
fetch_debs "${PACKAGES[@]}" ca-certificates
for pkg in "${PACKAGES[@]}"; do
  deb="${DEB[$pkg]}"
  dpkg-deb -x "$deb" "$rootfs"
  record_package "$deb" "$rootfs" md5sums
  log "$(basename "$deb")"
done
deb="${DEB[ca-certificates]}"
log "$(basename "$deb") (the certificate bundle and copyright only)"
mkdir -p "$work/ca"
dpkg-deb -x "$deb" "$work/ca"
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/share/doc/ca-certificates"
# What update-ca-certificates writes: every certificate, each ending in a newline, sorted.
find "$work/ca/usr/share/ca-certificates" -name '*.crt' -type f | LC_ALL=C sort |
  while IFS= read -r crt; do
    cat "$crt"
    [ -z "$(tail -c1 "$crt")" ] || echo
  done >"$rootfs/etc/ssl/certs/ca-certificates.crt"
certs="$(grep -c 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt")" ||
  die "no certificate in the bundle"
cp "$work/ca/usr/share/doc/ca-certificates/copyright" "$rootfs/usr/share/doc/ca-certificates/"
record_package "$deb" "$rootfs"

cat >"$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nobody:x:$NOBODY:$NOBODY:nobody:/nonexistent:/sbin/nologin
nonroot:x:$NONROOT:$NONROOT:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<EOF
root:x:0:
nobody:x:$NOBODY:
tty:x:5:
staff:x:50:
nonroot:x:$NONROOT:
EOF
# distroless static's nsswitch.conf (for programs that use glibc's NSS; the musl binary does not).
cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
# /etc/nsswitch.conf
#
# Example configuration of GNU Name Service Switch functionality.
# If you have the `glibc-doc-reference' and `info' packages installed, try:
# `info libc "Name Service Switch"' for information about this file.

passwd:         compat
group:          compat
shadow:         compat
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
EOF
# distroless's os-release keys, with the version of the base-files package used.
debian_version_id="$(sed -n 's/^VERSION_ID="\(.*\)"$/\1/p' "$rootfs/usr/lib/os-release")"
debian_codename="$(sed -n 's/^VERSION_CODENAME=\(.*\)$/\1/p' "$rootfs/usr/lib/os-release")"
if [ -z "$debian_version_id" ] || [ -z "$debian_codename" ]; then
  die "base-files has no usable os-release"
fi
[ "$debian_version_id" = 12 ] ||
  log "WARNING: these packages are from Debian $debian_version_id ($debian_codename), not 12 as distroless static-debian12"
rm -f "$rootfs/usr/lib/os-release"
cat >"$rootfs/usr/lib/os-release" <<EOF
PRETTY_NAME="Debian GNU/Linux $debian_version_id ($debian_codename), distroless-style (hack/build-image.sh)"
NAME="Debian GNU/Linux"
ID="debian"
VERSION_ID="$debian_version_id"
VERSION="Debian GNU/Linux $debian_version_id ($debian_codename)"
EOF
[ "$(readlink "$rootfs/etc/os-release")" = ../usr/lib/os-release ] || {
  rm -f "$rootfs/etc/os-release"
  ln -s ../usr/lib/os-release "$rootfs/etc/os-release"
}
mkdir -p "$rootfs/root" "$rootfs/home/nonroot" "$rootfs/tmp"
chmod 0700 "$rootfs/root" "$rootfs/home/nonroot"
chmod 0755 "$rootfs/home" "$rootfs"
chmod 1777 "$rootfs/tmp"

# The layer: everything owned by root, except the entries distroless (or the package) gives to
# another owner, appended with their owner and mode set explicitly so that the result does not
# depend on who runs this script.
tar_opts=(--format=gnu --sort=name --numeric-owner --mtime="@$epoch" --clamp-mtime)
special=("home/nonroot:$NONROOT:$NONROOT:0700")
[ -d "$rootfs/var/local" ] && special+=("var/local:0:50:2775")
excludes=()
for s in "${special[@]}"; do excludes+=(--exclude="${s%%:*}"); done
(cd "$rootfs" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort) >"$work/top"
tar -C "$rootfs" "${tar_opts[@]}" --owner=0 --group=0 --anchored "${excludes[@]}" -cf "$work/base.tar" -T "$work/top"
for s in "${special[@]}"; do
  IFS=: read -r path uid gid mode <<<"$s"
  tar -C "$rootfs" "${tar_opts[@]}" --no-recursion --owner="$uid" --group="$gid" --mode="$mode" \
    -cf "$work/special.tar" "$path"
  tar -Af "$work/base.tar" "$work/special.tar"
done
log "file system: $(tar -tf "$work/base.tar" | wc -l) entries, $certs CA certificates ($((SECONDS - start))s)"

# The binary's layer, as the Dockerfile's COPY makes it.
mkdir -p "$work/app"
install -m 0755 "$bin" "$work/app/fastconnect-operator"
tar -C "$work/app" "${tar_opts[@]}" --owner=0 --group=0 -cf "$work/app.tar" fastconnect-operator

# 3. The image, with umoci (no daemon, no storage configuration).
start=$SECONDS
layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci raw add-layer --image "$layout:$tag" --history.created "$created" \
  --history.created_by "hack/build-image.sh: Debian $debian_codename ${PACKAGES[*]} ca-certificates; distroless static passwd, group, nsswitch.conf, os-release" \
  "$work/base.tar"
umoci raw add-layer --image "$layout:$tag" --history.created "$created" \
  --history.created_by "COPY --from=build /out/fastconnect-operator /fastconnect-operator # hack/build-release.sh" \
  "$work/app.tar"
config_args=(
  --architecture "$arch" --os linux --created "$created"
  --config.user "$NONROOT:$NONROOT"
  --config.entrypoint /fastconnect-operator
  --config.exposedports 8080/tcp
  --config.workingdir /home/nonroot
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
  --config.label "org.opencontainers.image.version=$version"
)
for key in title description licenses; do
  value="$(dockerfile_label "org.opencontainers.image.$key")"
  config_args+=(--config.label "org.opencontainers.image.$key=$value")
done
umoci config --image "$layout:$tag" --history.created "$created" \
  --history.created_by "USER 65532:65532, EXPOSE 8080, ENTRYPOINT [\"/fastconnect-operator\"], LABEL ... (hack/build-image.sh)" \
  "${config_args[@]}"

# The index names the image as `docker save` does: the tag as the OCI ref name, the full
# reference for containerd, which imports it under that name without --base-name.
jq --arg ref "$ref" --arg tag "$tag" --arg arch "$arch" '
  .manifests |= map(
    .platform = {architecture: $arch, os: "linux"}
    | .annotations = {"io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": $tag})
' "$layout/index.json" >"$work/index.json"
[ "$(jq '.manifests | length' "$work/index.json")" = 1 ] || die "the layout holds more than one image"
mv "$work/index.json" "$layout/index.json"
umoci gc --layout "$layout"
chmod -R a+rX "$layout" # umoci writes blobs 0600

mkdir -p "$(dirname "$out")"
tar -C "$layout" "${tar_opts[@]}" --owner=0 --group=0 -cf "$out.tmp.$$" oci-layout index.json blobs
mv "$out.tmp.$$" "$out"
manifest="$(jq -r '.manifests[0].digest' "$layout/index.json")"
log "image built with umoci in $((SECONDS - start))s; whole run $((SECONDS - start_all))s"
log "$ref ($manifest, $(du -h "$out" | cut -f1)) in $out"
log "import it with: ctr -n k8s.io images import $out"
echo "$out"
echo "$ref"
