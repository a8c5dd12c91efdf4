# Entry points. `make test` is the test command (also what CI runs, via .ci/run).
SHELL := /usr/bin/env bash

.PHONY: test testenv-up testenv-down testenv-status testenv-build testenv-logs

## Bring up a real control plane (building it if missing), run fmt, clippy and all cargo tests, tear down.
test:
	hack/test.sh

## Start the test control plane (etcd, kube-apiserver, kube-controller-manager) on loopback.
testenv-up:
	hack/testenv.sh up
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
