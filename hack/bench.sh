#!/usr/bin/env bash
# The benchmarks (not part of `make test`): brings up the local control plane, runs
# benches/scale.rs and benches/fleet.rs against the operator's static release binary, prints a
# markdown table for each, and leaves the control plane as it found it.
#   FCO_BENCHES        which to run (default "scale fleet")
#   scale: FCO_BENCH_SIZES (default 100,1000); steady-state window in seconds FCO_BENCH_STEADY
#          (default 180)
#   fleet: FCO_FLEET_COMPANIES (50) × FCO_FLEET_RESOURCES (200), FCO_FLEET_FOREIGN (1000)
#          connections per company that are not ours, FCO_FLEET_PAGE (100); steady-state window
#          FCO_BENCH_STEADY (default 120); FCO_BENCH_FAULTS=1 runs it a second time with
#          kube-apiserver and etcd restarted during the ramp (hack/testenv.sh restart).
# FCO_TESTENV_DIR picks another control plane (hack/testenv.sh), e.g. one of the benchmark's own.
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
for bench in ${FCO_BENCHES:-scale fleet}; do
  case "$bench" in
    scale) cargo bench -p fastconnect-operator --bench scale ;;
    fleet)
      FCO_BENCH_FAULTS=0 cargo bench -p fastconnect-operator --bench fleet
      if [[ "${FCO_BENCH_FAULTS:-0}" == 1 ]]; then
        FCO_BENCH_FAULTS=1 cargo bench -p fastconnect-operator --bench fleet
      fi
      ;;
    *) echo "unknown benchmark '$bench' in FCO_BENCHES (scale, fleet)" >&2; exit 2 ;;
  esac
done
