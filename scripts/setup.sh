#!/usr/bin/env bash
# Set up vid2model in ./.venv on Debian/Ubuntu with Python 3.11.
#   scripts/setup.sh          the package and its runtime dependencies
#   scripts/setup.sh --test   also what the test suite needs (Chromium, Blender, Node tools)
#   scripts/setup.sh --bench  also the benchmark's peer (Debian's colmap CLI)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_bench=0
[ "${1:-}" = "--test" ] && want_test=1
[ "${1:-}" = "--bench" ] && want_bench=1

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

apt_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || apt_pkgs+=("$2"); }
python3 -c "import venv, ensurepip" 2>/dev/null || apt_pkgs+=(python3-venv)
# open3d's binary needs libusb at import time
ldconfig -p 2>/dev/null | grep -q "libusb-1.0.so.0" || apt_pkgs+=(libusb-1.0-0)
if [ "$want_test" = 1 ]; then
  need chromium chromium
  need blender blender
  need node nodejs
  need npm npm
  # Debian's Blender runs on the system Python; its glTF importer needs numpy there
  /usr/bin/python3 -c "import numpy" 2>/dev/null || apt_pkgs+=(python3-numpy)
fi
if [ "$want_bench" = 1 ]; then
  need colmap colmap
fi
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
  echo "installing system packages: ${apt_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras="viewer,service,measure"
[ "$want_test" = 1 ] && extras="viewer,service,measure,cluster,test,learned"
# torch is pinned (2.13.0) so pip takes the CPU build where one is provided instead of a newer CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]"

if [ "$want_test" = 1 ] && [ -f tools/package.json ] && command -v npm >/dev/null 2>&1; then
  (cd tools && npm ci --silent --no-audit --no-fund 2>/dev/null || npm install --silent --no-audit --no-fund)
fi
echo "vid2model is set up in .venv (run: .venv/bin/vid2model --help)"
