#!/usr/bin/env bash
# Browser test of the dashboard (www/) against a real 3-node cluster + a standalone broker.
#
#   BROKER_BIN=/work/main/build/broker tests/ui/run.sh
#
# 1. installs Debian's chromium with apt-get if /usr/bin/chromium is missing
#    (needs root, as on the dev machines and CI);
# 2. runs `npm ci` in tests/ui if node_modules is missing (playwright-core only,
#    from package-lock.json; it downloads no browser);
# 3. runs dashboard.test.mjs and exits with its status.
#
# Env: BROKER_BIN (default /work/main/build/broker), UI_SCREENSHOT_DIR (default:
# a fresh temp dir, paths printed), CHROMIUM_PATH (default /usr/bin/chromium).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export BROKER_BIN="${BROKER_BIN:-/work/main/build/broker}"
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"

if [ ! -x "$chromium" ]; then
  echo "run.sh: $chromium missing, installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y chromium >&2 || { apt-get update >&2 && apt-get install -y chromium >&2; }
fi

command -v node >/dev/null || { echo "run.sh: node is not installed" >&2; exit 1; }

if [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "run.sh: npm ci in $here" >&2
  # No browser download: playwright-core has no install script, and we use Debian's chromium.
  (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
fi

cd "$here"
exec node dashboard.test.mjs
