# syntax=docker/dockerfile:1
#
# curfew's image: the binary the tests and benchmarks measure (glibc, the release profile)
# on distroless/cc (glibc, CA certificates, time zones, no shell), running as the
# unprivileged user 65532. Nothing is written outside the ledger's volume, so the root
# filesystem can be mounted read-only.
#
#   docker build -t curfew .
#   docker run --rm -p 9464:9464 -v "$PWD/config/sandbox.yaml:/etc/curfew/curfew.yaml:ro" curfew
#
#   /etc/curfew/curfew.yaml   the rule file (a ConfigMap or a bind mount); reloaded on change
#   /var/lib/curfew           the SQLite ledger: audit log and savings (a volume)
#   :9464                     /metrics, /healthz, /readyz
#
# The build is CI's (`cargo build --release --locked`, on the toolchain CI uses) on Debian 12
# (bookworm), the system the tests and benchmarks run on: the binary is linked against
# Debian 12's glibc, and the runtime image carries the same glibc. The daemon's memory
# figures depend on it (src/memory.rs tunes glibc's allocator; musl's is another allocator
# and was never measured): tests/deploy.rs keeps the two stages on the benchmarks' libc.
# Debug info (kept by the release profile for profiling) is left out of the image.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
# A C toolchain for the bundled SQLite and ring (present in the official image; stated
# here so the build does not depend on it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The release profile exactly as the benchmarks build it (no CARGO_PROFILE_* override: a
# profile setting changes every symbol's name, and the code layout build.rs hands the
# linker names them); its debug info is stripped from the copy the image ships.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin curfew \
 && install -D -m 0755 target/release/curfew /out/curfew \
 && strip /out/curfew \
 && mkdir -p /out/ledger

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/curfew /usr/local/bin/curfew
# Owned by the runtime user, so that a fresh named volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/ledger /var/lib/curfew
# The image decides where the ledger lives and that the port is reachable from outside
# the container; these override `daemon.ledger` and `daemon.listen` of the rule file.
ENV CURFEW_DAEMON__LEDGER=/var/lib/curfew/curfew.db \
    CURFEW_DAEMON__LISTEN=0.0.0.0:9464
USER 65532:65532
VOLUME ["/var/lib/curfew"]
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/curfew"]
CMD ["run", "--config", "/etc/curfew/curfew.yaml", "--log-format", "json"]
