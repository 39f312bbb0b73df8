# The `provenant` binary in a small image. One image runs every role; the command picks it:
#   docker run IMAGE process --config /etc/provenant/process.toml
#   docker run IMAGE sink archive --config …   |   sink index --config …   |   serve --config …
# docker-compose.yml builds it for the at-scale stack (see ops/README.md).
#
# Build args:
#   PROVENANT_BUILD_COMMIT  the git commit shown by `provenant version` and /version
#                           (.git is not in the build context; e.g. $(git rev-parse --short=12 HEAD))
#   SOURCE_DATE_EPOCH       build time stamped into the binary (reproducible builds)

FROM rust:1-bookworm AS builder
# librdkafka is built from source by rdkafka-sys (make, a C compiler, zlib); SQLite and zstd
# are bundled. The rust image has most of this already; install what may be missing.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        make gcc g++ pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG PROVENANT_BUILD_COMMIT=unknown
ARG SOURCE_DATE_EPOCH
ENV PROVENANT_BUILD_COMMIT=${PROVENANT_BUILD_COMMIT} \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p provenant \
    && install -m 0755 target/release/provenant /usr/local/bin/provenant

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed non-root uid, so volumes keep one owner across rebuilds. /var/lib/provenant holds
# what a role keeps on disk (archive signing key, spool); named volumes mounted there start
# owned by this user.
RUN groupadd --system --gid 10001 provenant \
    && useradd --system --uid 10001 --gid provenant --home-dir /var/lib/provenant --shell /usr/sbin/nologin provenant \
    && install -d -o provenant -g provenant -m 0750 /var/lib/provenant /var/lib/provenant/keys /var/lib/provenant/spool \
    && install -d -m 0755 /etc/provenant
# `provenant-healthcheck PORT`: GET /healthz on 127.0.0.1:PORT with bash alone (no curl in the
# image); exit 0 when it answers "ok". docker-compose.yml uses it for every role.
RUN printf '%s\n' '#!/bin/bash' \
        'set -eu' \
        'exec 3<>"/dev/tcp/127.0.0.1/${1:?usage: provenant-healthcheck PORT}"' \
        'printf "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3' \
        'grep -q "^ok" <&3' \
        > /usr/local/bin/provenant-healthcheck \
    && chmod 0755 /usr/local/bin/provenant-healthcheck
COPY --from=builder /usr/local/bin/provenant /usr/local/bin/provenant
USER provenant:provenant
WORKDIR /var/lib/provenant
ENV PROVENANT_LOG=info
ENTRYPOINT ["provenant"]
CMD ["--help"]
