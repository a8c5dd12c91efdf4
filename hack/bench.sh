#!/usr/bin/env bash
# The scale benchmark (not part of `make test`): brings up the local control plane, runs
# benches/scale.rs against the operator's static release binary, prints a markdown table, and leaves the control plane
# as it found it. Sizes: FCO_BENCH_SIZES (default 100,1000); steady-state window in seconds:
# FCO_BENCH_STEADY (default 180).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Captured first: `status | grep -q` would trip pipefail when grep stops reading early.
status="$(hack/testenv.sh status 2>/dev/null || true)"
was_up=false
if [[ "$status" == *"kube-apiserver: ready"* ]]; then
  was_up=true
fi
hack/testenv.sh up
eval "$(hack/testenv.sh env)"
if [[ "$was_up" == false ]]; then
  trap 'hack/testenv.sh down' EXIT
fi

# Measure the binary users run: the static release build the Dockerfile makes.
CARGO_TARGET_DIR="$PWD/target/image" hack/build-release.sh "$PWD/target/image/image-out"
export FCO_OPERATOR_BIN="$PWD/target/image/image-out/fastconnect-operator"

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)" >&2
# The bench starts the sandbox binary from its own profile's directory; cargo bench builds only
# the operator package's targets.
cargo build --release -p consoleconnect-sandbox
cargo bench -p fastconnect-operator --bench scale
