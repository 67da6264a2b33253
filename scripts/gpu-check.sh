#!/usr/bin/env bash
# The GPU check, in one go on a machine with an NVIDIA GPU (no internet needed): builds varcode
# with the CUDA backend for this GPU, runs the GPU tests (the CUDA backend against the CPU backend
# on this machine; a skipped GPU test fails here), a compute-sanitizer pass on a short generation,
# then `varcode bench --device cuda` on random official-size weights (VAR-d30, CoDe N=8, CoDe N=6
# at batch 1, 16 and 64) and, when PyTorch with CUDA is there, the same settings in PyTorch eager
# (tools/perf/torch_code_bench.py) side by side. One JSON line per benchmark in $OUT/bench.jsonl.
# Sized to stay under 8 minutes on an H200.
#
#   bash scripts/gpu-check.sh                         # build deps installed (scripts/install-deps.sh)
#   VARCODE_DEPS=.gpu-deps bash scripts/gpu-check.sh  # Debian .debs unpacked into a prefix first
#                                                     # (scripts/gpu-deps.sh packs them)
# Environment: OUT (results folder, default gpu-check-out), GPU_CHECK_QUICK=1 (batch 1 and 16 only,
# no sanitizer), CUDA_ARCH (default: this GPU's), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
JOBS=${JOBS:-$(nproc)}
t0=$(date +%s)
stamp() { echo "[gpu-check +$(($(date +%s) - t0)) s] $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | tee "$OUT/gpu.txt" ||
  { echo "gpu-check: nvidia-smi failed: no NVIDIA GPU or driver here" >&2; exit 1; }
if [ -z "${CUDA_ARCH:-}" ]; then
  CUDA_ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
fi
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

CMAKE_EXTRA=()
if [ -n "${VARCODE_DEPS:-}" ]; then
  # Build dependencies from Debian .debs, unpacked into a private prefix (no root, no apt).
  PREFIX="$PWD/build-gpu-deps"
  mkdir -p "$PREFIX"
  for d in "$VARCODE_DEPS"/*.deb; do dpkg-deb -x "$d" "$PREFIX" 2>/dev/null || (cd "$PREFIX" && ar p "$OLDPWD/$d" data.tar.xz | tar xJ); done
  LIBDIR="$PREFIX/usr/lib/x86_64-linux-gnu"
  export CPATH="$PREFIX/usr/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$LIBDIR${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_PATH="$LIBDIR/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$PREFIX"
  CMAKE_EXTRA+=("-DCMAKE_PREFIX_PATH=$PREFIX/usr;$LIBDIR/cmake")
fi
# cuBLASLt at run time: the toolkit's, else PyTorch's wheel (nvidia-cublas).
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib"))' 2>/dev/null || true); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done

stamp "build (CUDA arch $CUDA_ARCH)"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DVARCODE_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DVARCODE_CUDA_ARCHITECTURES="$CUDA_ARCH" -DVARCODE_BUILD_BENCH=OFF -DVARCODE_BUILD_PYTHON=OFF \
  "${CMAKE_EXTRA[@]}" >"$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu -j"$JOBS" --target varcode_cli varcode_tests >"$OUT/build.log" 2>&1 ||
  { grep -E "error|Error" "$OUT/build.log" | head -40; exit 1; }
V=./build-gpu/varcode

stamp "GPU tests"
rc=0
VARCODE_REQUIRE_GPU=1 ./build-gpu/varcode_tests --gtest_filter='Cuda*:DeviceCli*' 2>&1 | tee "$OUT/gpu-tests.log" | tail -40 || rc=$?
# Every tolerance's measured error, so that the bounds can follow the suite's 10x rule.
VARCODE_REQUIRE_GPU=1 VARCODE_TEST_MEASURE=1 ./build-gpu/varcode_tests --gtest_filter='Cuda*' >"$OUT/measured.log" 2>&1 || true

M=models
PAIR="--vae $M/fashion_vae.pth --drafter $M/fashion_drafter.pth --refiner $M/fashion_refiner.pth --draft-steps 3"
if [ "${GPU_CHECK_QUICK:-0}" != "1" ] && command -v compute-sanitizer >/dev/null; then
  stamp "compute-sanitizer memcheck / racecheck"
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 $V generate --device cuda --quiet $PAIR --class 1,7 \
      --out "$OUT/sanitizer-$tool.png" >"$OUT/sanitizer-$tool.log" 2>&1 || { rc=1; tail -20 "$OUT/sanitizer-$tool.log"; }
  done
fi

stamp "bench"
BATCHES="1 16 64"
[ "${GPU_CHECK_QUICK:-0}" = "1" ] && BATCHES="1 16"
: >"$OUT/bench.jsonl"
have_torch=$(python3 -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
for b in $BATCHES; do
  runs=3
  [ "$b" = 64 ] && runs=2
  for mode in var code8 code6; do
    case $mode in
      var) flags="--model random:d30"; tflags="--mode var" ;;
      code8) flags="--drafter random:d30 --refiner random:d16 --draft-steps 8"; tflags="--mode code --draft-steps 8" ;;
      code6) flags="--drafter random:d30 --refiner random:d16 --draft-steps 6"; tflags="--mode code --draft-steps 6" ;;
    esac
    $V bench --device cuda --dtype bf16 --vae random $flags --batch "$b" --runs $runs --warmup 1 --json \
      >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || { rc=1; echo "bench $mode b$b failed" | tee -a "$OUT/summary.txt"; }
    if [ "$have_torch" = 1 ] && [ -f tools/perf/torch_code_bench.py ]; then
      python3 tools/perf/torch_code_bench.py $tflags --batch "$b" --runs $runs --warmup 1 --device cuda \
        >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || echo "torch $mode b$b failed" | tee -a "$OUT/summary.txt"
    fi
    stamp "  $mode batch $b done"
  done
done
cat "$OUT/bench.jsonl"
stamp "done (status $rc)"
exit $rc
