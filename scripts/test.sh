#!/usr/bin/env bash
# Builds varcode and runs the whole test suite (parity against ../shared/fixtures included),
# then the unit tests and the short end-to-end paths under ASan + UBSan, then the thread-safety
# test under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
# CI (CI=true) runs on a CPU with AVX512-BF16: there a bf16 kernel test that would skip fails.
if [ "${CI:-}" = "true" ] && grep -qw avx512_bf16 /proc/cpuinfo; then export VARCODE_REQUIRE_BF16=1; fi
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
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVARCODE_SANITIZE=ON -DVARCODE_BUILD_BENCH=OFF -DVARCODE_CUDA=OFF >/dev/null
  cmake --build build-asan -j"$JOBS" --target varcode_tests varcode_cli
  # Unit tests, and SanitizedPaths (a short CoDe generation, edit and sample): the parity suites
  # run above at full speed.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    bash -c "cd build-asan && ctest --output-on-failure -E 'Parity|Golden|Generation|Generates|Edit|Cli'"
  # ThreadSanitizer: threads sharing one Generator, one-thread OpenMP teams per request (libgomp
  # is not instrumented; see tests/model/thread_safety_test.cpp).
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVARCODE_TSAN=ON -DVARCODE_BUILD_BENCH=OFF -DVARCODE_CUDA=OFF >/dev/null
  cmake --build build-tsan -j"$JOBS" --target varcode_thread_tests
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ./build-tsan/varcode_thread_tests --gtest_filter='ThreadSafety.SharedGeneratorMatchesOneThread'
fi
