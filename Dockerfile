# ddcoterm container image: a recorded debug shell (`docker run -it IMAGE`, `kubectl debug --image IMAGE`),
# the bastion image of the Helm chart, and the installer image of its node DaemonSet.
#
# Two ways to build (the legacy builder is enough: no BuildKit, no `# syntax=` line):
#
#   From a binary built on the host (what CI and `make image` do; no Rust image needed):
#     cargo build --release
#     docker build --target host --build-arg BASE_IMAGE=ddcoterm-base:bookworm -t ddcoterm:dev .
#
#   Fully from source, multi-stage (needs a Rust builder image, e.g. with a registry):
#     docker build -t ddcoterm:dev .
#
# Stages are ordered so that `--target host` never touches the Rust builder image: the legacy builder builds
# every stage up to the target, in file order.
#
# Configuration: mount the organisation layer at /etc/ddcoterm (config.yaml, bundles/, teams/), pass keys as
# DD_API_KEY / DD_APP_KEY / DD_SITE, anything else as DDCOTERM_<SECTION>__<KEY>.

ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm

# ---------------------------------------------------------------------------------------------------------
# runtime-base: everything the runtime needs except the binary.
FROM ${BASE_IMAGE} AS runtime-base
LABEL org.opencontainers.image.title="ddcoterm" \
      org.opencontainers.image.description="Recorded debug shell and command guard compatible with Datadog CoTerm configs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="docs/fleet.md"
SHELL ["/bin/sh", "-eu", "-c"]
# debian:bookworm-slim lacks CA certificates (TLS to Datadog); the locally built base already has them and
# bash, so this installs only what is missing and needs no network when nothing is.
RUN missing=""; \
    [ -e /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"; \
    command -v bash >/dev/null || missing="$missing bash"; \
    if [ -n "$missing" ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid 10001 coterm; \
    useradd --uid 10001 --gid coterm --create-home --home-dir /home/coterm --shell /bin/bash coterm; \
    install -d -m 0755 /etc/ddcoterm /etc/ddcoterm/bundles /etc/ddcoterm/teams /usr/local/lib/ddcoterm/overrides; \
    install -d -m 0700 -o coterm -g coterm /home/coterm/.ddcoterm
ENV SHELL=/bin/bash \
    LANG=C.UTF-8
WORKDIR /home/coterm
# Healthy = a recorded shell can start: the layered configuration (the mounted organisation layer, the
# user's file, DDCOTERM_* variables) loads. A broken or unsafe /etc/ddcoterm makes every recorded command
# refuse to run, which is the failure worth surfacing; the network is not checked (an unreachable Datadog or
# session server costs nothing: records wait in the spool). Keys are masked in the output.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["ddcoterm", "config", "show", "--format", "json"]

# ---------------------------------------------------------------------------------------------------------
# host: the runtime with a binary built on the host. The build context is the repository; .dockerignore
# lets only target/{release,debug}/ddcoterm and ddcoterm-shim through from target/. BINARY picks another path
# (e.g. a debug build), SHIM_BINARY the static shim binary built with it (installed beside ddcoterm: what
# `ddcoterm shim create` links to).
FROM runtime-base AS host
ARG BINARY=target/release/ddcoterm
ARG SHIM_BINARY=target/release/ddcoterm-shim
COPY ${BINARY} /usr/local/bin/ddcoterm
COPY ${SHIM_BINARY} /usr/local/bin/ddcoterm-shim
RUN chmod 0755 /usr/local/bin/ddcoterm /usr/local/bin/ddcoterm-shim && /usr/local/bin/ddcoterm --version \
    && /usr/local/bin/ddcoterm-shim --version
# Build-specific labels last, so that a new commit does not invalidate the cached layers above.
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
USER coterm
ENTRYPOINT ["ddcoterm"]

# ---------------------------------------------------------------------------------------------------------
# build: compiles the release binary from source (only when building the default, last stage).
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ddcoterm --bin ddcoterm-shim \
    && install -m 0755 target/release/ddcoterm /ddcoterm && install -m 0755 target/release/ddcoterm-shim /ddcoterm-shim

# ---------------------------------------------------------------------------------------------------------
# runtime (default target): the same runtime with the binary built in the `build` stage.
FROM runtime-base AS runtime
COPY --from=build /ddcoterm /ddcoterm-shim /usr/local/bin/
RUN /usr/local/bin/ddcoterm --version && /usr/local/bin/ddcoterm-shim --version
# Build-specific labels last, so that a new commit does not invalidate the cached layers above.
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
USER coterm
ENTRYPOINT ["ddcoterm"]
