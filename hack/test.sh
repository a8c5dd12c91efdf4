#!/usr/bin/env bash
# THE test command (`make test` calls it): brings up a real control plane and a node (building
# what is missing), builds the operator's image and imports it into the node, then runs rustfmt,
# clippy and every cargo test against it, and brings it down again.
# If the control plane was already up before (hack/testenv.sh up), it is left running, except in CI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TESTENV="$ROOT/hack/testenv.sh"

export FCO_TESTENV=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

ensure_rust_components() {
  local c
  for c in rustfmt clippy; do
    if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
      command -v rustup >/dev/null 2>&1 || { echo "cargo $c is missing and there is no rustup" >&2; exit 1; }
      rustup component add "$c"
    fi
  done
}

was_running=0
if "$TESTENV" status >/dev/null 2>&1; then
  was_running=1
fi

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ]; then
    echo "=== tests failed (exit $rc); control plane logs ===" >&2
    "$TESTENV" logs >&2
  fi
  if [ "$was_running" -eq 1 ] && [ -z "${CI:-}" ]; then
    echo "=== leaving the control plane running (it was up before); stop it with: make testenv-down" >&2
  else
    "$TESTENV" down
  fi
  exit "$rc"
}
trap cleanup EXIT

ensure_rust_components

echo "=== control plane and node up"
"$TESTENV" up --node
eval "$("$TESTENV" env)"
"$TESTENV" status
kubectl version

# The operator's image for the chart's pods (tests/pods.rs), as the chart names it by default:
# the release build it needs is the one hack/check-image.sh checks below, so that one is quick.
echo "=== hack/build-image.sh, imported into the node"
image_out="$(hack/build-image.sh)"
image_archive="$(sed -n 1p <<<"$image_out")"
image_ref="$(sed -n 2p <<<"$image_out")"
"$TESTENV" import-image "$image_archive" "$image_ref"
export FCO_TEST_IMAGE="$image_ref"

# promtool and the prometheus-operator's CRDs for the chart's monitoring tests (tests/alerts.rs,
# tests/helm.rs), from the Go module proxy into the cache. A cold promtool build (empty module and
# build caches) takes about 400 s of CPU: 3.5 to 4 minutes on 2 cores, a second when cached.
echo "=== hack/promtool.sh: promtool and the PrometheusRule/ServiceMonitor CRDs"
FCO_PROMTOOL="$(hack/promtool.sh promtool)"
FCO_PROMETHEUS_OPERATOR_CRDS="$(hack/promtool.sh crds)"
export FCO_PROMTOOL FCO_PROMETHEUS_OPERATOR_CRDS
"$FCO_PROMTOOL" --version

# Checkov from PyPI, for the chart's scan (tests/checkov.rs), into a virtualenv in the cache:
# about 2 minutes the first time, a second after.
echo "=== hack/checkov.sh: Checkov for the chart scan"
FCO_CHECKOV="$(hack/checkov.sh)"
export FCO_CHECKOV

echo "=== cargo fmt --all -- --check"
cargo fmt --all -- --check
# Clippy sees the code with and without the test hooks; the tests run with them (the crash
# failpoint of tests/operator.rs).
echo "=== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "=== cargo clippy --all-targets --features fastconnect-operator/failpoints -- -D warnings"
cargo clippy --all-targets --features fastconnect-operator/failpoints -- -D warnings
# The supply chain (deny.toml): licences, bans (one kube, k8s-openapi and schemars) and sources
# of the dependency graph, with cargo-deny, offline (the builds above downloaded every crate).
# Not advisories: the RustSec database is on GitHub, which CI cannot reach; run
# `hack/supply-chain.sh advisories` where it can. A cold cargo-deny install (crates registry, into
# the tool cache) takes about 1.5 minutes of 2 cores, a second when cached; tests/supply_chain.rs
# uses the same binary to show that each rule bites.
echo "=== hack/supply-chain.sh check: cargo deny --locked --offline check licenses bans sources"
FCO_CARGO_DENY="$(hack/supply-chain.sh tool cargo-deny)"
export FCO_CARGO_DENY
hack/supply-chain.sh check --hide-inclusion-graph
echo "=== cargo test --all-targets --features fastconnect-operator/failpoints"
cargo test --all-targets --features fastconnect-operator/failpoints

# The container image recipe (no container engine here): hadolint, the Dockerfile's static musl
# release build and proof that the binary is static. About 3.5 minutes on 2 cores when target/image
# is empty, a second when it is warm. FCO_SKIP_IMAGE_CHECK=1 skips it for quick local runs.
if [ "${FCO_SKIP_IMAGE_CHECK:-0}" = 1 ] && [ -z "${CI:-}" ]; then
  echo "=== hack/check-image.sh skipped (FCO_SKIP_IMAGE_CHECK=1)"
else
  echo "=== hack/check-image.sh"
  hack/check-image.sh
fi
