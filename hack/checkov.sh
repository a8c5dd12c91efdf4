#!/usr/bin/env bash
# Checkov (Bridgecrew/Prisma Cloud's policy scanner) from PyPI, for the chart's security scan
# (tests/checkov.rs), in a virtualenv in the cache hack/testenv/build.sh and hack/promtool.sh use.
# Nothing is installed that is already there.
#
#   ${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv/
#     checkov-X.Y.Z/venv/bin/checkov   the scanner
#     checkov-X.Y.Z/install.log        pip's output
#
# The version is pinned (the newest on PyPI when this was written): a new Checkov release brings
# new checks, and the test asserts that the chart passes every check, so upgrading is a change to
# review, not something a CI run picks up by itself. Checkov needs Python 3.9 or later; the venv
# is made with the `python3` on PATH (Debian's python3-venv is installed when it cannot make one).
# A venv is only complete once pip has finished and `checkov --version` answers with the pinned
# version; a failed install is removed and retried on the next run.
#
# Usage: hack/checkov.sh    installs if missing; prints the path of checkov (the only stdout line)
# Environment: FCO_CHECKOV_VERSION (default below), FCO_CACHE_DIR.
set -euo pipefail

CHECKOV_VERSION="${FCO_CHECKOV_VERSION:-3.3.30}"

HOME="${HOME:-$(cd ~ && pwd)}"
CACHE_ROOT="${FCO_CACHE_DIR:-$HOME/.cache/fastconnect-operator}/testenv"
DIR="$CACHE_ROOT/checkov-$CHECKOV_VERSION"
BIN="$DIR/venv/bin/checkov"

log() { printf '[checkov] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

lock() { # dir
  mkdir -p "$1"
  exec 9>"$1/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9 || die "cannot lock $1/.lock"
  fi
}

make_venv() { # dir
  if python3 -m venv "$1" >&2; then
    return 0
  fi
  # Debian's python3 keeps venv in a package of its own.
  command -v apt-get >/dev/null 2>&1 || die "python3 cannot create a venv (install python3-venv)"
  rm -rf "$1"
  log "apt-get install python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2
  python3 -m venv "$1" >&2
}

install() {
  local logf="$DIR/install.log" start
  command -v python3 >/dev/null 2>&1 || die "python3 is missing (Checkov needs Python 3.9 or later)"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    die "$(python3 --version 2>&1) is too old: Checkov $CHECKOV_VERSION needs Python 3.9 or later"
  start=$SECONDS
  # Built in place (a venv's scripts name its path in their #! line); .complete marks it whole.
  rm -rf "$DIR/venv" "$DIR/.complete"
  make_venv "$DIR/venv"
  log "pip install checkov==$CHECKOV_VERSION (log: $logf)"
  printf '\n$ pip install checkov==%s\n' "$CHECKOV_VERSION" >>"$logf"
  if ! "$DIR/venv/bin/pip" install --disable-pip-version-check "checkov==$CHECKOV_VERSION" \
    >>"$logf" 2>&1; then
    rm -rf "$DIR/venv"
    log "pip failed; the last lines of $logf:"
    tail -n 30 "$logf" >&2
    exit 1
  fi
  local version
  # CKV_SKIP_PACKAGE_UPDATE_CHECK: Checkov otherwise asks PyPI for a newer release at every start.
  version="$(CKV_SKIP_PACKAGE_UPDATE_CHECK=true "$BIN" --version 2>>"$logf")" ||
    die "$BIN --version failed (see $logf)"
  [ "$version" = "$CHECKOV_VERSION" ] || die "$BIN says it is $version, not $CHECKOV_VERSION"
  touch "$DIR/.complete"
  log "checkov $CHECKOV_VERSION installed in $((SECONDS - start))s"
}

if [ ! -f "$DIR/.complete" ]; then
  lock "$DIR"
  # Another process may have installed it while this one waited for the lock.
  if [ ! -f "$DIR/.complete" ]; then
    install
  fi
fi
[ -x "$BIN" ] || die "$BIN is missing: remove $DIR and run $0 again"
echo "$BIN"
