# Message broker image: a Release build of `broker` on Debian 12, run as the
# non-root user `broker`. See docs/docker.md.
#
#   docker build -t broker .
#   docker run -p 9092:9092 -v broker-data:/var/lib/broker broker
#
# Both stages use debian:bookworm-slim: Debian 12 is what the build is made
# and tested on (libraft 0.15, libmicrohttpd 0.9.75), so the runtime libraries
# match the ones the binary was linked against.

########################################################################
# Build stage: compilers and -dev packages; only the `broker` target is built.
FROM debian:bookworm-slim AS build

# The top-level CMakeLists.txt also configures the unit and e2e tests, so
# cmocka and a python3 interpreter must be present for `cmake` to configure,
# even though only the `broker` target is built.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config python3-minimal \
      libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libraft-dev \
      libuv1-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what building `broker` reads, so that editing tests, docs, configs or
# the dashboard does not invalidate the compile step's cache. CMake needs
# tests/CMakeLists.txt to configure; its globs then find no test sources,
# and tools/bench is optional in CMakeLists.txt.
COPY CMakeLists.txt ./
COPY tests/CMakeLists.txt tests/
COPY include/ include/
COPY src/ src/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target broker -j"$(nproc)" \
 && strip /build/broker \
 && /build/broker --version

########################################################################
# Runtime stage: shared libraries, curl for the health check, nothing else.
FROM debian:bookworm-slim

# libraft2 is the Debian 12 package that ships libraft.so.2 (libraft-dev
# 0.15.0-1 depends on libraft2 (= 0.15.0-1)); it pulls in liblz4-1.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libcurl4 libraft2 libuv1 curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --system --gid 10001 broker \
 && useradd --system --uid 10001 --gid broker --home-dir /var/lib/broker \
      --no-create-home --shell /usr/sbin/nologin broker \
 && mkdir -p /etc/broker /var/lib/broker/data /var/lib/broker/raft \
 && chown -R broker:broker /var/lib/broker

# The image's settings come before the files, so that a new binary or
# dashboard changes only the last layers (less to rebuild, push and pull).

# The broker serves its dashboard from BROKER_WWW (an explicit --www wins).
ENV BROKER_WWW=/usr/share/broker/www

# Topic data in /var/lib/broker/data, Raft log and snapshots in
# /var/lib/broker/raft (cluster mode). The directories exist in the image,
# owned by `broker`, so a new named volume mounted there is writable.
VOLUME /var/lib/broker
WORKDIR /var/lib/broker
USER broker

# 9092: HTTP API and dashboard. 8001: Raft transport (cluster mode only).
EXPOSE 9092 8001

# Checks the HTTP port of the default config; a config that moves
# server.port needs its own health check (docs/docker.md).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:9092/healthz || exit 1

# SIGTERM (docker stop) makes the broker finish in-flight requests and exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["broker"]
CMD ["-config=/etc/broker/broker.json"]

# Last: what changes with every source edit.
COPY --from=build /build/broker /usr/local/bin/broker
COPY www/ /usr/share/broker/www/
COPY configs/docker/broker.json /etc/broker/broker.json
