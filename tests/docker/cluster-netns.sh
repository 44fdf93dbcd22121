#!/usr/bin/env bash
# Helper of tests/docker/smoke.sh (phase `cluster`), run as
#   unshare --net tests/docker/cluster-netns.sh IMAGE WORKDIR BUILDAH [ARGS...]
#
# docker-compose.yml's 3-node cluster without an engine: in a private network
# namespace (so nothing collides with ports of the host) the compose network's
# fixed addresses are put on `lo`, and three containers of IMAGE run
# configs/docker/node{1,2,3}.json. The three share one namespace, so each
# config's server.host 0.0.0.0 is narrowed to the node's own address; every
# other field (raft_address, initial_members, advertise, data dirs) is used
# as shipped. Checks: the compose file and the configs agree, a leader is
# elected, a produce sent to a follower is forwarded to the leader (via
# server.advertise) and committed, every node serves the message, /readyz is
# 200 everywhere, and each broker stops cleanly on SIGTERM.
set -euo pipefail

IMAGE=$1; W=$2; shift 2; B=("$@")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COMPOSE=$ROOT/docker-compose.yml
PIDS=(); CTRS=()

fail() { printf 'smoke: FAIL [cluster]: %s\n' "$*" >&2; exit 1; }
log()  { printf 'smoke: %s\n' "$*"; }

descendants() {
    local c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$c"; descendants "$c"
    done
}
broker_of() {
    local p
    for p in $(descendants "$1"); do
        [ "$(cat /proc/"$p"/comm 2>/dev/null)" = broker ] && { echo "$p"; return 0; }
    done
    return 1
}
cleanup() {
    local rc=$? p bp
    set +e
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        if bp=$(broker_of "$p"); then kill -TERM "$bp"; else kill -TERM -- "-$p"; fi
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$p" 2>/dev/null
    done
    for c in "${CTRS[@]}"; do "${B[@]}" rm "$c" >/dev/null 2>&1; done
    if [ $rc -ne 0 ]; then
        for i in 1 2 3; do
            [ -s "$W/node$i.log" ] && sed "s/^/  node$i: /" "$W/node$i.log" >&2
        done
    fi
    exit $rc
}
trap cleanup EXIT

# The compose file and the three configs must agree on the addresses.
mapfile -t IPS < <(awk '$1 == "ipv4_address:" { print $2 }' "$COMPOSE")
[ ${#IPS[@]} = 3 ] || fail "want 3 ipv4_address entries in docker-compose.yml, found ${#IPS[@]}"
prefix=$(awk '$1 == "-" && $2 == "subnet:" { split($3, a, "/"); print a[2]; exit }' "$COMPOSE")
[ -n "$prefix" ] || fail "no ipam subnet in docker-compose.yml"
members=""
for i in 1 2 3; do
    ip=${IPS[$((i - 1))]}
    cfg=$ROOT/configs/docker/node$i.json
    grep -q "\"node_id\": $i," "$cfg" || fail "$cfg: node_id is not $i"
    grep -q "\"raft_address\": \"$ip:800$i\"" "$cfg" || fail "$cfg: raft_address is not $ip:800$i (compose gives node$i $ip)"
    grep -q "\"advertise\": \"$ip:9092\"" "$cfg" || fail "$cfg: server.advertise is not $ip:9092"
    grep -q "\"port\": 9092," "$cfg" || fail "$cfg: server.port is not 9092 (the image's HEALTHCHECK)"
    grep -q "\"$((9091 + i)):9092\"" "$COMPOSE" || fail "docker-compose.yml: node$i's HTTP is not published on $((9091 + i))"
    grep -q "configs/docker/node$i.json:/etc/broker/node.json" "$COMPOSE" || fail "docker-compose.yml: node$i does not mount configs/docker/node$i.json"
    members+="\"$ip:800$i\", "
done
members="[${members%, }]"
for i in 1 2 3; do
    grep -qF "\"initial_members\": $members" "$ROOT/configs/docker/node$i.json" \
        || fail "configs/docker/node$i.json: initial_members is not $members"
done

ip link set lo up
for ip in "${IPS[@]}"; do ip addr add "$ip/$prefix" dev lo; done

for i in 1 2 3; do
    ip=${IPS[$((i - 1))]}
    sed "s/\"host\": \"0.0.0.0\"/\"host\": \"$ip\"/" "$ROOT/configs/docker/node$i.json" >"$W/node$i.json"
    chmod 644 "$W/node$i.json"
    "${B[@]}" rm "broker-docker-smoke-node$i" >/dev/null 2>&1 || true
    c=$("${B[@]}" from --pull=never --name "broker-docker-smoke-node$i" "$IMAGE")
    CTRS+=("$c")
    setsid "${B[@]}" run --isolation chroot -v "$W/node$i.json:/etc/broker/node.json:ro" "$c" -- \
        broker -config=/etc/broker/node.json >"$W/node$i.log" 2>&1 &
    PIDS+=($!)
done

# Wait for a leader whose HTTP address is known (announced), which is what
# a follower needs to forward a write.
leader=""
for _ in $(seq 1 150); do
    for ip in "${IPS[@]}"; do
        leader=$(curl -sf --max-time 2 "http://$ip:9092/cluster/leader" 2>/dev/null) || leader=""
        echo "$leader" | grep -Eq '"http_address": ?"[0-9]' && break 2
        leader=""
    done
    for i in 1 2 3; do
        kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null || fail "node $i exited during startup (logs below)"
    done
    sleep 0.2
done
[ -n "$leader" ] || fail "no leader within 30 s"
lid=$(echo "$leader" | sed -n 's/.*"node_id": *\([0-9]*\).*/\1/p')
log "leader: $leader"

# A follower: the produce must be forwarded to the leader and committed.
f=$(( lid % 3 + 1 )); fip=${IPS[$((f - 1))]}
resp=$(curl -sS --max-time 10 -D "$W/headers" -w '\n%{http_code}' -H 'Content-Type: application/json' \
       -d '{"key": "k", "value": "via-follower"}' "http://$fip:9092/topics/compose/messages")
code=${resp##*$'\n'}; body=${resp%$'\n'*}
[ "$code" = 201 ] || fail "produce to follower node $f: HTTP $code: $body"
grep -qi "^X-Forwarded-By: $f" "$W/headers" || fail "produce to node $f was not forwarded to the leader"
log "produce via follower node $f -> $code $body"

for i in 1 2 3; do
    ip=${IPS[$((i - 1))]}; got=""
    for _ in $(seq 1 50); do
        got=$(curl -sf --max-time 2 "http://$ip:9092/topics/compose/partitions/0/messages?offset=0" 2>/dev/null || true)
        echo "$got" | grep -q '"via-follower"' && break
        got=""; sleep 0.1
    done
    [ -n "$got" ] || fail "node $i does not serve the committed message"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$ip:9092/readyz")
    [ "$code" = 200 ] || fail "node $i /readyz: $code"
done
log "all 3 nodes serve the message; /readyz 200 on all"

for p in "${PIDS[@]}"; do
    bp=$(broker_of "$p") || fail "cannot find a broker process under buildah run $p"
    kill -TERM "$bp"
done
for i in 1 2 3; do
    rc=0; wait "${PIDS[$((i - 1))]}" || rc=$?
    [ $rc = 0 ] || fail "node $i exited with status $rc after SIGTERM"
    grep -q 'stopped cleanly' "$W/node$i.log" || fail "node $i: no 'stopped cleanly' after SIGTERM"
done
PIDS=()
log "3 nodes stopped cleanly"
