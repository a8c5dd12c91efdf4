#!/usr/bin/env bash
# The scale benchmark (not part of `make test`): brings up the local control plane, runs
# benches/scale.rs with the release build, prints a markdown table, and leaves the control plane
# as it found it. Sizes: FCO_BENCH_SIZES (default 100,1000); steady-state window in seconds:
# FCO_BENCH_STEADY (default 180).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

was_up=false
if hack/testenv.sh status >/dev/null 2>&1 && hack/testenv.sh status | grep -q "kube-apiserver: ready"; then
  was_up=true
fi
hack/testenv.sh up
eval "$(hack/testenv.sh env)"
if [[ "$was_up" == false ]]; then
  trap 'hack/testenv.sh down' EXIT
fi

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)" >&2
cargo bench --bench scale
