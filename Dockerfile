# syntax=docker/dockerfile:1
# The operator image: a static binary on distroless/static, running as the non-root user 65532.
#
#   docker build -t <registry>/fastconnect-operator:0.1.0 .
#
# The build stage runs hack/build-release.sh, the same script `make image-check` runs (with
# hadolint and a check that the binary is static) on a machine without a container engine.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
# The version hack/supply-chain.sh pins (hack/check-image.sh checks that the two agree).
ARG CARGO_CYCLONEDX_VERSION=0.5.9
# musl-gcc compiles ring's C and assembly for the musl target. cargo-cyclonedx writes the SBOM
# that hack/build-release.sh puts beside the binary (/out/fastconnect-operator.cdx.json).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl \
 && cargo install --locked --version "${CARGO_CYCLONEDX_VERSION}" cargo-cyclonedx \
 && rm -rf /usr/local/cargo/registry
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    hack/build-release.sh /out

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="fastconnect-operator" \
      org.opencontainers.image.description="Orders Oracle FastConnect Layer 2 connections through Console Connect" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/fastconnect-operator /fastconnect-operator
USER 65532:65532
# /metrics, /healthz and /readyz.
EXPOSE 8080
ENTRYPOINT ["/fastconnect-operator"]
