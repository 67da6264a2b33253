#!/usr/bin/env bash
# Packs the Debian packages varcode builds against into a folder (default .gpu-deps), so that
# scripts/gpu-check.sh can build on a GPU machine without internet or apt:
#   bash scripts/gpu-deps.sh [DIR]   # here, with apt-get
#   VARCODE_DEPS=DIR bash scripts/gpu-check.sh   # there
set -euo pipefail
DIR=${1:-.gpu-deps}
mkdir -p "$DIR"
cd "$DIR"
# Headers and libraries of the build (no Python, no benchmarks: gpu-check builds neither), with the
# run-time libraries they need that a non-Debian machine may lack (Debian 12's libstdc++ too: its
# libraries and the static GoogleTest were built with GCC 12). They need a glibc of 2.36 or close.
apt-get download libdnnl-dev libdnnl2 libzip-dev libzip4 libpng-dev libpng16-16 zlib1g-dev zlib1g nlohmann-json3-dev \
  libcli11-dev libgtest-dev libgmock-dev libcpp-httplib-dev libcpp-httplib0.11 libbrotli1 libbz2-1.0 libssl3 \
  libstdc++6 2>&1 | grep -v "^W:" || true
du -sh .
