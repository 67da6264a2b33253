#!/usr/bin/env bash
# The whole Fashion-MNIST training pipeline, one stage after another (never two at once), every
# stage resumable and skipped once its DONE marker exists in $VARCODE_TRAIN_DIR/<stage>/.
#
#   nohup bash tools/train/pipeline.sh > /root/varcode-train/pipeline.log 2>&1 &
#
# Stages: vae -> tokens -> classifier -> drafter -> refiner. Each python process runs under
# nice 19 with 2 threads. Re-running the same command after a kill continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
export VARCODE_TRAIN_DIR="${VARCODE_TRAIN_DIR:-/root/varcode-train}"
W="$VARCODE_TRAIN_DIR"
mkdir -p "$W"
# Debian's torch links the reference (netlib) BLAS: 15x slower matmuls. Use OpenBLAS for our
# processes only (unpacked from the Debian package, system alternatives untouched).
OB="$W/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp"
if [ ! -e "$OB/libblas.so.3" ]; then
  mkdir -p "$W/debs" && (cd "$W/debs" && apt-get download libopenblas0-openmp) && \
    dpkg -x "$W"/debs/libopenblas0-openmp_*.deb "$W/openblas" || echo "warning: no OpenBLAS, training will be slow"
fi
export LD_LIBRARY_PATH="$OB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2
PY="nice -n 19 /usr/bin/python3"

stage() {  # stage <name> <script> [args...]
  local name=$1; shift
  if [ -e "$W/$name/DONE" ]; then echo "== $name: done already"; return 0; fi
  if [ ! -e "$1" ]; then echo "== $name: $1 missing, skipped"; return 0; fi
  echo "== $name: $* ($(date -u +%FT%TZ))"
  $PY "$@"
  echo "== $name: finished ($(date -u +%FT%TZ))"
}

stage vae tools/train/train_vae.py
stage tokens tools/train/tokenize_data.py
stage classifier tools/eval/train_classifier.py
stage drafter tools/train/train_var.py --role drafter
stage refiner tools/train/train_var.py --role refiner
echo "== pipeline complete ($(date -u +%FT%TZ))"
