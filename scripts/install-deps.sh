#!/usr/bin/env bash
# Debian packages varcode builds against. Idempotent; uses sudo only when not root.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS="build-essential cmake pkg-config libdnnl-dev libzip-dev libpng-dev zlib1g-dev nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev"
# python3-numpy: the .npz tests read the writer's output back with numpy.
PKGS="$PKGS python3-numpy"
# varcode serve: cpp-httplib; its web page test: headless Chromium driven from Python over the DevTools protocol.
PKGS="$PKGS libcpp-httplib-dev chromium python3 python3-websocket"
missing=""
# The Python package and its tests (issue #15): pybind11 binding, numpy, pytest; Pillow for to_pil()
# and the tests' PNG reader; tqdm for progress=True; venv/pip/setuptools/wheel for `pip install .`.
PKGS="$PKGS pybind11-dev python3-dev python3-numpy python3-pytest python3-pil python3-tqdm python3-venv python3-pip python3-setuptools python3-wheel"
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
