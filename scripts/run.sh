#!/usr/bin/env bash
# Install what is missing, build (Release) and start a standalone broker on
# :9092 with its data in ./data. Extra arguments go to the broker, e.g.
#   scripts/run.sh -config=configs/broker.json
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build Release
echo "run.sh: the CLI is $(pwd)/build/brokerctl (also ./brokerctl; see docs/cli.md)" >&2
exec ./build/broker "$@"
