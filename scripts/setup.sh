#!/usr/bin/env bash
# Installs the Debian packages Polyak builds and runs on, skipping what is already there.
# Usage: scripts/setup.sh [extra-package ...]   (e.g. chromium for the browser tests)
set -euo pipefail

packages=(libxsmm-dev zlib1g-dev libsqlite3-dev libcurl4-openssl-dev dataset-fashion-mnist pkg-config "$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
