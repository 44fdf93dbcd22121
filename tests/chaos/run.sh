#!/usr/bin/env bash
# Fault-injection suite (tests/chaos/chaos.py) against the Release broker.
#   tests/chaos/run.sh --seconds 60 --all     the long run
#   tests/chaos/run.sh --seconds 4 kill pause two nemeses, short
# BROKER_BIN overrides the binary (default: build/broker, built if missing).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "${BROKER_BIN:-}" ]; then
  BROKER_BIN="$root/build/broker"
  [ -x "$BROKER_BIN" ] || "$root/scripts/build.sh" build Release
fi
export BROKER_BIN BROKER_SRC="$root"
exec python3 "$root/tests/chaos/chaos.py" "$@"
