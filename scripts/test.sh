#!/usr/bin/env bash
# Install what is missing, build twice (Release, and ASan+UBSan) and run
# every test through ctest in both builds. Extra arguments go to ctest,
# e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)

echo "== Release build"
scripts/build.sh build Release
ctest --test-dir build --output-on-failure -j"$jobs" "$@"

echo "== ASan + UBSan build"
scripts/build.sh build-asan Debug -DBROKER_SANITIZE=ON
# The browser, Docker and fault-injection (chaos) tests exercise the same
# code as the Release run and are slow (chaos has timed deadlines that a
# sanitized build misses): once is enough.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE 'ui|docker|chaos' "$@"
