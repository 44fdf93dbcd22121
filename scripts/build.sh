#!/usr/bin/env bash
# Configure and build into build/ (Release) or the directory and type given:
#   scripts/build.sh [BUILD_DIR] [CMAKE_BUILD_TYPE] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}; type=${2:-Release}; shift $(( $# > 2 ? 2 : $# )) || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
# The original guide runs ./broker from the repository root: point a
# symlink at the default build's binary.
if [ "$dir" = build ]; then ln -sfn build/broker broker; ln -sfn build/brokerctl brokerctl; fi
