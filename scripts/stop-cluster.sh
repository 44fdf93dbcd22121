#!/usr/bin/env bash
# Stop the nodes started by scripts/start-cluster.sh (SIGTERM, then wait).
set -uo pipefail
cd "$(dirname "$0")/.."
for i in 1 2 3; do
  pidf=run/node$i.pid
  [ -f "$pidf" ] || continue
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "node $i did not stop, killing"; kill -9 "$pid"; }
    echo "stopped node $i"
  fi
  rm -f "$pidf"
done
