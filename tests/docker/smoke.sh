#!/usr/bin/env bash
# Docker image smoke test, without a Docker engine: build the project's
# Dockerfile for real with buildah, then run the image and use the broker in it.
#
#   sudo tests/docker/smoke.sh          (root: buildah's vfs storage, apt-get)
#
# Phases (each one timed):
#   tools   apt-get install buildah, debootstrap, curl, iproute2 if missing
#   base    create the local image `debian:bookworm-slim` (the Dockerfile's FROM)
#           from a `debootstrap --variant=minbase bookworm` rootfs, unless it is
#           already in the storage; the rootfs tarball is cached, so this runs
#           debootstrap once per cache dir
#   build   buildah bud --pull=never of ./Dockerfile -> broker:test
#   config  the image config: user broker, entrypoint/cmd, healthcheck, ports,
#           volume, BROKER_WWW
#   image   inside the image: not root, no compiler/cmake/-dev packages, every
#           shared library of `broker` found, apt lists removed
#   run     start the broker from the image on a free port (chroot isolation
#           shares the host's network), wait for /healthz from the host,
#           produce a message and fetch it back, get the dashboard, then
#           SIGTERM: the broker must stop cleanly with status 0
#   cluster docker-compose.yml's cluster: configs/docker/node{1,2,3}.json in
#           three containers of the image, in a private network namespace
#           that has the compose network's fixed addresses (cluster-netns.sh):
#           leader elected, produce via a follower, read on every node
# The working containers are removed at the end (also on failure); the base
# image and broker:test stay in the storage for the next run.
#
# Environment:
#   DOCKER_SMOKE_CACHE    cache dir: base rootfs tarball + buildah storage
#                         (default /var/tmp/broker-docker-cache)
#   DOCKER_SMOKE_IMAGE    tag to build (default broker:test)
#   DOCKER_SMOKE_LAYERS   0 (default): build every step again each run;
#                         1: keep buildah's layer cache (--layers). With the
#                         vfs driver every cached layer is a full copy of the
#                         rootfs: measured here, a cached rebuild (~30-40 s,
#                         ~4 GB of storage) was slower than building from
#                         scratch (~20 s, apt-get from the mirror + compile)
#   DOCKER_SMOKE_KEEP     1: keep the working container after the run (debug)
#   DOCKER_SMOKE_CLUSTER  0: skip the cluster phase
#
# The Debian mirror is read at run time from /etc/apt/sources.list.d/debian.sources
# (or /etc/apt/sources.list); the base image gets the host's apt sources, so
# the image build uses the same mirror as the host.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${DOCKER_SMOKE_CACHE:-/var/tmp/broker-docker-cache}
IMAGE=${DOCKER_SMOKE_IMAGE:-broker:test}
LAYERS=${DOCKER_SMOKE_LAYERS:-0}
KEEP=${DOCKER_SMOKE_KEEP:-0}
BASE_IMAGE=debian:bookworm-slim
SUITE=bookworm
CONTAINER=broker-docker-smoke
STORAGE=$CACHE/storage
RUNROOT=/run/broker-docker-smoke
[ -d /run ] && [ -w /run ] || RUNROOT=$CACHE/runroot
# A storage of our own (vfs: works on any filesystem, no overlay/fuse needed),
# so this test neither sees nor disturbs other buildah/podman users.
B=(buildah --storage-driver vfs --root "$STORAGE" --runroot "$RUNROOT")

T0=$(date +%s.%N)
PHASE=""
PHASE_T=""
TIMINGS=()
TMP=""
RUN_PID=""
CTR=""

log()  { printf 'smoke: %s\n' "$*"; }
fail() { printf 'smoke: FAIL%s: %s\n' "${PHASE:+ [$PHASE]}" "$*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
phase_end() {
    [ -n "$PHASE" ] || return 0
    local d; d=$(elapsed "$PHASE_T")
    TIMINGS+=("$(printf '%-7s %7ss' "$PHASE" "$d")")
    log "phase $PHASE done in ${d}s"
    PHASE=""
}
phase() {
    phase_end
    PHASE=$1; PHASE_T=$(date +%s.%N)
    log "== phase $PHASE: $2"
}

# The broker runs under `buildah run` (buildah -> chroot helper -> broker).
# A SIGTERM to buildah makes it kill the broker; `docker stop` sends SIGTERM
# to the broker itself, so find it among buildah's descendants.
descendants() {
    local c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$c"; descendants "$c"
    done
}
broker_pid() {
    local p
    for p in $(descendants "$RUN_PID"); do
        [ "$(cat /proc/"$p"/comm 2>/dev/null)" = broker ] && { echo "$p"; return 0; }
    done
    return 1
}
# Stop what we started (the broker by its pid, else buildah's process group
# by its id) and remove the working container. Runs on every exit.
stop_broker() {
    local sig=$1 i bp
    [ -n "$RUN_PID" ] || return 0
    if [ "$sig" = TERM ] && bp=$(broker_pid); then
        kill -TERM "$bp" 2>/dev/null || true
    else
        kill -"$sig" -- "-$RUN_PID" 2>/dev/null || kill -"$sig" "$RUN_PID" 2>/dev/null || true
    fi
    for i in $(seq 1 100); do
        kill -0 "$RUN_PID" 2>/dev/null || break
        sleep 0.1
    done
}
cleanup() {
    local rc=$?
    set +e
    if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
        stop_broker TERM
        kill -0 "$RUN_PID" 2>/dev/null && stop_broker KILL
    fi
    if [ -n "$CTR" ]; then
        if [ "$KEEP" = 1 ]; then
            log "keeping working container $CTR (DOCKER_SMOKE_KEEP=1)"
        else
            "${B[@]}" rm "$CTR" >/dev/null 2>&1 || log "warning: could not remove container $CTR"
        fi
    fi
    [ -n "$TMP" ] && rm -rf "$TMP"
    if [ $rc -ne 0 ]; then
        printf 'smoke: FAILED after %ss (exit %d)\n' "$(elapsed "$T0")" "$rc" >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'fail "command failed (line $LINENO, status $?): $BASH_COMMAND"' ERR
trap 'fail "interrupted"' INT TERM

[ "$(id -u)" -eq 0 ] || fail "must run as root (buildah vfs storage in $STORAGE, apt-get)"
mkdir -p "$CACHE"
# One run at a time per cache dir: the storage and the base tarball are shared.
exec 9>"$CACHE/lock"
flock -w 3600 9 || fail "another smoke run holds $CACHE/lock"
TMP=$(mktemp -d /tmp/broker-docker-smoke.XXXXXX)
chmod 755 "$TMP"

########################################################################
phase tools "buildah, debootstrap, curl, ip"
missing=()
for tp in buildah:buildah debootstrap:debootstrap curl:curl ip:iproute2 unshare:util-linux; do
    command -v "${tp%%:*}" >/dev/null 2>&1 || missing+=("${tp#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get update -qq || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$TMP/apt.log" 2>&1 \
        || { cat "$TMP/apt.log" >&2; fail "apt-get install ${missing[*]} failed"; }
fi
log "$(buildah --version)"
BUD_PULL=--pull=never
buildah bud --help 2>/dev/null | grep -q -- '--pull-never' && ! buildah bud --help | grep -q 'if never' \
    && BUD_PULL=--pull-never

########################################################################
phase base "local $BASE_IMAGE image"
debian_mirror() {
    local f=/etc/apt/sources.list.d/debian.sources u
    if [ -r "$f" ]; then
        # deb822: the first URIs of a stanza that is not the security archive.
        u=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
        [ -n "$u" ] && { echo "$u"; return 0; }
    fi
    if [ -r /etc/apt/sources.list ]; then
        u=$(sed -e 's/\[[^]]*\]//' /etc/apt/sources.list |
            awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }')
        [ -n "$u" ] && { echo "$u"; return 0; }
    fi
    return 1
}
# Bump BASE_RECIPE when the recipe below changes: an older base image or
# tarball in the cache is then rebuilt instead of reused.
BASE_RECIPE=2
base_label=$("${B[@]}" inspect --type image \
    --format '{{index .Docker.Config.Labels "org.broker.smoke-base"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [ "$base_label" = "$BASE_RECIPE" ]; then
    log "$BASE_IMAGE (recipe $BASE_RECIPE) already in $STORAGE"
else
    tarball=$CACHE/base/rootfs-$SUITE-r$BASE_RECIPE.tar
    if [ ! -s "$tarball" ]; then
        mirror=$(debian_mirror) || fail "no Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
        log "debootstrap --variant=minbase $SUITE from $mirror (once per cache dir)"
        rootfs=$CACHE/rootfs.partial
        rm -rf "$rootfs"
        debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$TMP/debootstrap.log" 2>&1 \
            || { tail -30 "$TMP/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
        # Like the official -slim image: same apt sources as the host (with
        # updates and security when the host has them), no docs, man pages or
        # locales now or in later installs, no package lists or .debs.
        if [ -r /etc/apt/sources.list.d/debian.sources ]; then
            cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
            rm -f "$rootfs/etc/apt/sources.list"
        fi
        cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF_DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF_DPKG
        find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
        find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
        rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/groff/* "$rootfs"/usr/share/info/* \
               "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/locale/*
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
               "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log "$rootfs"/debootstrap
        mkdir -p "$CACHE/base"
        rm -f "$CACHE"/base/rootfs*.tar
        tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
        mv "$tarball.partial" "$tarball"
        rm -rf "$rootfs"
    else
        log "using cached rootfs $tarball"
    fi
    printf 'FROM scratch\nADD %s /\nLABEL org.broker.smoke-base=%s\nCMD ["bash"]\n' \
        "$(basename "$tarball")" "$BASE_RECIPE" >"$CACHE/base/Dockerfile"
    "${B[@]}" bud --isolation chroot --format docker -q --iidfile "$TMP/base.iid" \
        -f "$CACHE/base/Dockerfile" "$CACHE/base" >"$TMP/base.log" 2>&1 \
        || { cat "$TMP/base.log" >&2; fail "could not build $BASE_IMAGE from $tarball"; }
    # Both spellings of the name, so that FROM resolves locally and nothing is
    # ever pulled; tagging moves a name off an older base image.
    "${B[@]}" tag "$(cat "$TMP/base.iid")" "localhost/$BASE_IMAGE" "docker.io/library/$BASE_IMAGE" >/dev/null
    log "created $BASE_IMAGE from $tarball"
fi
"${B[@]}" images "$BASE_IMAGE" | sed 's/^/  /'

########################################################################
phase build "buildah bud $BUD_PULL -f Dockerfile -t $IMAGE"
bud_args=(--isolation chroot "$BUD_PULL" --format docker -f "$ROOT/Dockerfile")
if [ "$LAYERS" = 1 ]; then
    bud_args+=(--layers)
    # Tag the build stage too: its layers are then in use, survive the prune
    # below and are reused by the next run (an untagged stage is "dangling").
    if ! "${B[@]}" bud "${bud_args[@]}" --target build -t "$IMAGE-build" "$ROOT" >"$TMP/build.log" 2>&1; then
        tail -60 "$TMP/build.log" >&2
        fail "build stage failed (last lines above)"
    fi
    grep -E 'STEP [0-9]|Using cache' "$TMP/build.log" | cut -c1-120 | sed 's/^/  /' || true
fi
if ! "${B[@]}" bud "${bud_args[@]}" -t "$IMAGE" "$ROOT" >"$TMP/build.log" 2>&1; then
    tail -60 "$TMP/build.log" >&2
    fail "image build failed (last lines above)"
fi
grep -E 'STEP [0-9]|COMMIT|Using cache' "$TMP/build.log" | cut -c1-120 | sed 's/^/  /' || true
# Drop what no tag uses any more (the previous broker:test, layers of older
# sources), so that the storage does not grow run after run.
[ "$LAYERS" = 1 ] || "${B[@]}" rmi "$IMAGE-build" >/dev/null 2>&1 || true
"${B[@]}" rmi --prune >/dev/null 2>&1 || true
"${B[@]}" images "$IMAGE" | sed 's/^/  /'

########################################################################
phase config "image configuration"
cfg() { "${B[@]}" inspect --type image --format "{{.Docker.Config.$1}}" "$IMAGE"; }
user=$(cfg User)
[ "$user" = broker ] || fail "image USER is '$user', want broker"
ep=$(cfg Entrypoint)
[ "$ep" = '[broker]' ] || fail "ENTRYPOINT is $ep, want [\"broker\"]"
cmd=$(cfg Cmd)
[ "$cmd" = '[-config=/etc/broker/broker.json]' ] || fail "CMD is $cmd, want [\"-config=/etc/broker/broker.json\"]"
hc=$(cfg Healthcheck)
echo "$hc" | grep -q 'curl .*http://127.0.0.1:9092/healthz' \
    || fail "no HEALTHCHECK with curl on /healthz in the image config (built with --format docker?): $hc"
ports=$(cfg ExposedPorts)
echo "$ports" | grep -q '9092/tcp' && echo "$ports" | grep -q '8001/tcp' \
    || fail "EXPOSE: $ports, want 9092/tcp and 8001/tcp"
vols=$(cfg Volumes)
echo "$vols" | grep -q '/var/lib/broker:' || fail "VOLUME: $vols, want /var/lib/broker"
env=$(cfg Env)
echo "$env" | grep -q 'BROKER_WWW=/usr/share/broker/www' || fail "Env: $env lacks BROKER_WWW"
log "user=$user entrypoint=$ep cmd=$cmd"
log "healthcheck=$hc"
log "ports=$ports volumes=$vols"

########################################################################
phase image "contents of the image"
"${B[@]}" rm "$CONTAINER" >/dev/null 2>&1 || true  # left over by a killed run
CTR=$("${B[@]}" from "$BUD_PULL" --name "$CONTAINER" "$IMAGE")
in_ctr() { "${B[@]}" run --isolation chroot "$CTR" -- "$@"; }
uid=$(in_ctr id -u)
[ "$uid" != 0 ] || fail "buildah run as the image's USER gives uid 0"
log "runs as $(in_ctr id -un) (uid $uid)"
tools=$(in_ctr sh -c 'for t in gcc cc c99 cmake make ld as pkg-config; do command -v $t; done; true')
[ -z "$tools" ] || fail "build tools in the runtime image: $tools"
devpkgs=$(in_ctr dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' |
          awk '$1 == "ii" && ($2 ~ /-dev(:.*)?$/ || $2 ~ /^(gcc|gcc-[0-9]+|cpp|cpp-[0-9]+|cmake|cmake-data|make|binutils.*|libgcc-[0-9]+-dev)(:.*)?$/) { print $2 }')
[ -z "$devpkgs" ] || fail "build packages in the runtime image: $devpkgs"
notfound=$(in_ctr ldd /usr/local/bin/broker | grep 'not found' || true)
[ -z "$notfound" ] || fail "missing shared libraries: $notfound"
lists=$(in_ctr sh -c 'ls /var/lib/apt/lists | grep -v -e "^lock$" -e "^partial$" || true')
[ -z "$lists" ] || fail "apt lists left in the image: $lists"
version=$(in_ctr broker --version)
log "$version; libraries all found; no compiler, cmake or -dev packages"
in_ctr sh -c 'test -w /var/lib/broker/data && test -w /var/lib/broker/raft' \
    || fail "/var/lib/broker/{data,raft} not writable by the broker user"

########################################################################
phase run "broker from the image, HTTP from the host"
in_ctr cat /etc/broker/broker.json >"$TMP/default.json"
grep -q '"data_dir": "/var/lib/broker/data"' "$TMP/default.json" || fail "default config: data_dir is not /var/lib/broker/data"

# A port below Linux's ephemeral range (32768-60999), where no outgoing
# connection of another program can hold it; nothing listening there.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$(( 20000 + RANDOM % 12000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

# Start the broker from the image with its own default config moved to
# 127.0.0.1:$port (the container shares the host's network), mounted
# read-only as a user's config would be. 0 once /healthz answers; 2 when the
# port was taken meanwhile (try another); fails otherwise.
start_broker() {
    sed -e "s/\"port\": 9092,/\"port\": $port,/" -e 's/"host": "0.0.0.0"/"host": "127.0.0.1"/' \
        "$TMP/default.json" >"$TMP/smoke.json"
    grep -q "\"port\": $port," "$TMP/smoke.json" || fail "could not set server.port in the default config"
    chmod 644 "$TMP/smoke.json"
    setsid "${B[@]}" run --isolation chroot -v "$TMP/smoke.json:/etc/broker/smoke.json:ro" "$CTR" -- \
        broker -config=/etc/broker/smoke.json >"$TMP/broker.log" 2>&1 &
    RUN_PID=$!
    base=http://127.0.0.1:$port
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null --max-time 2 "$base/healthz" 2>/dev/null; then return 0; fi
        if ! kill -0 "$RUN_PID" 2>/dev/null; then
            wait "$RUN_PID" 2>/dev/null || true
            RUN_PID=""
            grep -q "Address already in use" "$TMP/broker.log" && return 2
            cat "$TMP/broker.log" >&2
            fail "broker exited before /healthz answered (log above)"
        fi
        sleep 0.2
    done
    cat "$TMP/broker.log" >&2
    fail "no /healthz on $base within 30 s (log above)"
}

started=1
for _ in 1 2 3; do
    port=$(free_port) || fail "no free TCP port found"
    rc=0; start_broker || rc=$?
    if [ $rc = 0 ]; then started=0; break; fi
    log "port $port was taken meanwhile; trying another"
done
[ $started = 0 ] || fail "could not start the broker on a free port (3 tries)"
log "healthz ok on $base after $(elapsed "$PHASE_T")s"

topic=smoke-$$
resp=$(curl -sS --max-time 10 -w '\n%{http_code}' -H 'Content-Type: application/json' \
       -d '{"key": "k1", "value": {"hello": "docker"}}' "$base/topics/$topic/messages")
code=${resp##*$'\n'}; body=${resp%$'\n'*}
[ "$code" = 201 ] || fail "produce: HTTP $code, want 201: $body"
echo "$body" | grep -Eq '"offset": ?0' || fail "produce: want offset 0: $body"
log "produce -> $code $body"

resp=$(curl -sS --max-time 10 -w '\n%{http_code}' "$base/topics/$topic/partitions/0/messages?offset=0")
code=${resp##*$'\n'}; body=${resp%$'\n'*}
[ "$code" = 200 ] || fail "fetch: HTTP $code, want 200: $body"
echo "$body" | grep -Eq '"hello": ?"docker"' || fail "fetch: the produced value is not in: $body"
echo "$body" | grep -Eq '"key": ?"k1"' || fail "fetch: the key is not in: $body"
log "fetch   -> $code $body"

page=$(curl -fsS --max-time 10 "$base/") || fail "GET / (dashboard from BROKER_WWW) failed"
echo "$page" | grep -qi '<html' || fail "GET / did not return the dashboard page"
log "dashboard served from BROKER_WWW"

# docker stop: SIGTERM to the broker, which must finish and exit 0.
bpid=$(broker_pid) || fail "cannot find the broker process under buildah run (pid $RUN_PID)"
kill -TERM "$bpid"
rc=0
for _ in $(seq 1 150); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.2; done
kill -0 "$RUN_PID" 2>/dev/null && { cat "$TMP/broker.log" >&2; fail "broker still running 30 s after SIGTERM"; }
wait "$RUN_PID" || rc=$?
RUN_PID=""
grep -q 'stopped cleanly' "$TMP/broker.log" || { cat "$TMP/broker.log" >&2; fail "no 'stopped cleanly' in the broker log after SIGTERM"; }
[ $rc = 0 ] || { cat "$TMP/broker.log" >&2; fail "broker exited with status $rc after SIGTERM"; }
sed 's/^/  broker: /' "$TMP/broker.log"

########################################################################
if [ "${DOCKER_SMOKE_CLUSTER:-1}" = 1 ]; then
    phase cluster "docker-compose.yml's 3 nodes, in a private network namespace"
    mkdir -p "$TMP/cluster"
    unshare --net bash "$ROOT/tests/docker/cluster-netns.sh" "$IMAGE" "$TMP/cluster" "${B[@]}" \
        || fail "the compose cluster check failed (see above)"
fi

phase_end
log "timings:"
for t in "${TIMINGS[@]}"; do log "  $t"; done
log "PASS in $(elapsed "$T0")s (image $IMAGE)"
