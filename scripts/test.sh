#!/usr/bin/env bash
# Builds varcode and runs the whole test suite (parity against ../shared/fixtures included),
# then the unit tests under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"
(cd build && ctest --output-on-failure -j1)
# The Python package's tests, with the interpreter CMake built the module for (build/python).
if [ -f build/python/python-executable ]; then
  py_rc=0
  PYTHONPATH=build/python "$(cat build/python/python-executable)" -m pytest -q -p no:cacheprovider tests/python || py_rc=$?
  if [ "$py_rc" -ne 0 ]; then
    echo "test.sh: the Python tests failed (pytest exit status $py_rc)" >&2
    exit "$py_rc"
  fi
fi
if [ "${VARCODE_SKIP_SANITIZE:-0}" != "1" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVARCODE_SANITIZE=ON -DVARCODE_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$JOBS" --target varcode_tests varcode_cli
  # Unit tests only: the parity suites run above at full speed.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    bash -c "cd build-asan && ctest --output-on-failure -E 'Parity|Golden|Generation|Generates|Edit|Cli'"
fi
