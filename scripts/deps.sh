#!/usr/bin/env bash
# Install the Debian 12 packages the broker needs to build and test, if missing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config curl python3
      libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libraft-dev
      libuv1-dev libcmocka-dev
      iproute2)  # ip netns: network partitions in tests/chaos
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
