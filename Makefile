# Entry points. `make test` is the test command (also what CI runs, via .ci/run).
SHELL := /usr/bin/env bash

.PHONY: test supply-chain supply-chain-advisories testenv-up testenv-down testenv-status testenv-build testenv-logs demo demo-down image-check image bench

## Bring up a real control plane (building it if missing), run fmt, clippy and all cargo tests, tear down.
test:
	hack/test.sh

## The supply-chain check CI runs (cargo-deny with deny.toml: licences, bans, sources; hack/supply-chain.sh),
## after fetching the crates it reads; installs cargo-deny into the tool cache if missing.
supply-chain:
	hack/supply-chain.sh check --fetch

## RustSec advisories for Cargo.lock (cargo deny check advisories): needs GitHub, so not in CI.
supply-chain-advisories:
	hack/supply-chain.sh advisories

## Start the test control plane (etcd, kube-apiserver, kube-controller-manager) on loopback;
## with NODE=1 also a node (kube-scheduler, kubelet, kube-proxy, containerd, CNI bridge).
testenv-up:
	hack/testenv.sh up $(if $(filter 1 true yes,$(NODE)),--node)
	@echo 'use it with: eval "$$(hack/testenv.sh env)"'

## Stop the test control plane and remove its data.
testenv-down:
	hack/testenv.sh down

testenv-status:
	hack/testenv.sh status

testenv-logs:
	hack/testenv.sh logs

## Only build the control plane binaries into the cache.
testenv-build:
	hack/testenv.sh build

## The demo: control plane, sandbox, the Helm chart, the operator as the chart's ServiceAccount,
## and the sample connection followed to Active (hack/demo.sh up). With NODE=1, a node too, and
## the operator runs as the chart's pod from the image built by hack/build-image.sh.
demo:
	hack/demo.sh up $(if $(filter 1 true yes,$(NODE)),--node)

## Stop the demo: operator, sandbox, the Helm release and the control plane.
demo-down:
	hack/demo.sh down

## Check the container image recipe without a container engine: hadolint, the Dockerfile's
## static release build, and proof that the binary is static.
image-check:
	hack/check-image.sh

## Build the operator's OCI image without a container engine
## (hack/build-image.sh; an OCI archive for `ctr -n k8s.io images import`).
image:
	hack/build-image.sh

## Benchmarks (on demand, not in CI; hack/bench.sh): scale (N resources at once) and fleet (50
## companies × 200 resources among 1,000 foreign connections each, restart; FCO_BENCH_FAULTS=1
## adds a run with kube-apiserver and etcd restarted); markdown tables on stdout.
bench:
	hack/bench.sh
