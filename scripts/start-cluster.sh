#!/usr/bin/env bash
# Start a 3-node cluster in the background with configs/broker-cluster-node{1,2,3}.json
# (HTTP 9092-9094, Raft 8001-8003, logs in logs/, data in data-nodeN and raft-data/nodeN),
# then wait until a leader is known. Builds first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/broker ] || { scripts/deps.sh; scripts/build.sh build Release; }
mkdir -p logs run
for i in 1 2 3; do
  pidf=run/node$i.pid
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "node $i already running (pid $(cat "$pidf"))"; continue
  fi
  nohup ./build/broker -config=configs/broker-cluster-node$i.json >>logs/node$i.out 2>&1 &
  echo $! >"$pidf"
  echo "started node $i (pid $!)"
done
for _ in $(seq 1 100); do
  leader=$(curl -sf http://127.0.0.1:9092/cluster/leader 2>/dev/null || true)
  # Wait for the leader's HTTP address too: it is replicated a moment after
  # the election, and an empty one would send operators the wrong way.
  if [ -n "$leader" ] && ! grep -q '"http_address": *""' <<<"$leader"; then
    echo "leader: $leader"
    echo "dashboard: http://127.0.0.1:9092/  (also :9093, :9094)"
    echo "logs:      logs/node1.log logs/node2.log logs/node3.log"
    echo "status:    curl -s http://127.0.0.1:9092/cluster/status"
    exit 0
  fi
  sleep 0.2
done
echo "no leader after 20 s; see logs/node*.log" >&2
exit 1
