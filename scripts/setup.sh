#!/usr/bin/env bash
# setup.sh: installs the Debian packages hcinfer builds with (CMake, gcc, OpenBLAS + LAPACKE,
# Lua 5.4, CUnit, pkg-config, python3-pip for model downloads; clang with its sanitizer and libFuzzer
# runtimes for scripts/fuzz.sh). Skips what is already there.
set -euo pipefail
packages=(cmake gcc make pkg-config libopenblas-dev liblapacke-dev liblua5.4-dev libcunit1-dev clang libclang-rt-dev)
# python3 with pip may come from elsewhere (pyenv): ask apt for it only when none works
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3 python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all build dependencies are installed"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
