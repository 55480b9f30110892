#!/usr/bin/env bash
# Install the Debian 12 packages plateau needs to build, test and analyse (idempotent; needs root
# or sudo). Only what is missing is installed, so a provisioned machine pays nothing.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-dev liblapacke-dev libgsl-dev
  libopenmpi-dev openmpi-bin
  libnetcdf-dev
  libinih-dev libjansson-dev libpcre2-dev libssl-dev
  libicu-dev
  clang libclang-rt-14-dev
  python3-numpy python3-scipy python3-xarray python3-netcdf4 python3-matplotlib
  python3-regex
  ca-certificates curl
  strace
  groff-base
)
# node and npm run the reference tokenizer in the tests. Some images bring their own Node.js
# (whose npm conflicts with Debian's npm package): use it when present.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
