#!/usr/bin/env bash
# The measurements of docs/performance.md: standalone and 3-node produce
# (single record and 100 per request, 1 KiB values), fetch, and the time
# from kill -9 of the leader to the first acknowledged write. Starts its own
# brokers on free loopback ports with temp dirs; prints one line per run.
#   tools/bench/perf.sh [BUILD_DIR]   (default build; a Release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
DUR=${PERF_DURATION:-5}
tmp=$(mktemp -d); pids=()
trap 'kill ${pids[@]} 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -sf "http://$1/readyz" >/dev/null && return; sleep 0.1; done; echo "no $1" >&2; exit 1; }
bench() { # label, then broker-bench args
  local label=$1; shift
  printf '%-44s ' "$label"
  "$B/broker-bench" --json --duration "$DUR" "$@" 2>/dev/null | python3 -c '
import json,sys; d=json.loads(sys.stdin.read())
l=d["latency_ms"]
print("%9.0f msg/s %7.1f MB/s  p50 %6.2f  p99 %6.2f  p999 %6.2f ms  errors %d" % (
  d["msgs_per_s"], d["mb_per_s"], l["p50"], l["p99"], l["p999"], d["errors"]))'
}

# ---- standalone ----
P=$(port)
cat >"$tmp/s.json" <<J
{"data_dir":"$tmp/s","server":{"host":"127.0.0.1","port":$P,"log_file":"$tmp/s.log"}}
J
"$B/broker" -config="$tmp/s.json" & pids+=($!)
wait_up 127.0.0.1:$P
S=http://127.0.0.1:$P
echo "== standalone (fsync per acknowledged batch: flush_interval 0s)"
bench "produce 1 KiB x1, 8 conns"    --url $S --topic s1 --connections 8 --batch 1
bench "produce 1 KiB x1, 64 conns"   --url $S --topic s1 --connections 64 --batch 1
bench "produce 1 KiB x100, 8 conns"  --url $S --topic s100 --connections 8 --batch 100
bench "fetch 1 KiB, 1000/request, 8 conns" --url $S --topic s100 --mode consume --connections 8 --warmup 0
kill "${pids[@]}"; wait 2>/dev/null || true; pids=()

# ---- 3-node cluster ----
H=(); R=()
for i in 1 2 3; do H+=($(port)); R+=($(port)); done
members="\"127.0.0.1:${R[0]}\",\"127.0.0.1:${R[1]}\",\"127.0.0.1:${R[2]}\""
start_node() {
  local i=$1
  cat >"$tmp/n$i.json" <<J
{"data_dir":"$tmp/d$i","server":{"host":"127.0.0.1","port":${H[$((i-1))]},"log_file":"$tmp/n$i.log"},
 "cluster":{"enabled":true,"node_id":$i,"initial_members":[$members],"data_dir":"$tmp/r$i"}}
J
  "$B/broker" -config="$tmp/n$i.json" & echo $! >"$tmp/pid$i"; pids+=($!)
}
for i in 1 2 3; do start_node $i; done
for i in 1 2 3; do wait_up 127.0.0.1:${H[$((i-1))]}; done
leader_id() { curl -s "http://127.0.0.1:${H[0]}/cluster/leader" | python3 -c 'import json,sys; print(json.load(sys.stdin)["node_id"])'; }
L=$(leader_id); F=$(( L % 3 + 1 ))
LU=http://127.0.0.1:${H[$((L-1))]}; FU=http://127.0.0.1:${H[$((F-1))]}
sleep 2 # members announce their HTTP addresses
echo "== 3 nodes on this machine (leader node $L)"
bench "leader: produce 1 KiB x1, 8 conns"     --url $LU --topic c1 --connections 8
bench "leader: produce 1 KiB x1, 64 conns"    --url $LU --topic c1 --connections 64
bench "leader: produce 1 KiB x100, 8 conns"   --url $LU --topic c100 --connections 8 --batch 100
bench "follower: produce 1 KiB x1, 8 conns"   --url $FU --topic c1 --connections 8
bench "follower: produce 1 KiB x1, 64 conns"  --url $FU --topic c1 --connections 64
bench "follower: produce 1 KiB x100, 8 conns" --url $FU --topic c100 --connections 8 --batch 100
bench "follower: fetch 1 KiB, 1000/request"   --url $FU --topic c100 --mode consume --connections 8 --warmup 0

echo "== failover: kill -9 of the leader to the first acknowledged write (via a follower)"
for round in 1 2 3; do
  L=$(leader_id 2>/dev/null || true)
  [ -n "$L" ] || { sleep 1; L=$(leader_id); }
  F=$(( L % 3 + 1 )); FU=http://127.0.0.1:${H[$((F-1))]}
  t0=$(date +%s.%N)
  kill -9 "$(cat "$tmp/pid$L")"
  until [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 -X POST "$FU/topics/fo/messages" \
             -H 'Content-Type: application/json' -d '{"value":1}')" = 201 ]; do sleep 0.02; done
  t1=$(date +%s.%N)
  printf 'round %d: leader node %s killed, write acknowledged after %.2f s\n' "$round" "$L" "$(echo "$t1 - $t0" | bc)"
  start_node "$L"; wait_up 127.0.0.1:${H[$((L-1))]}; sleep 3
done
