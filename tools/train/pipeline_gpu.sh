#!/usr/bin/env bash
# The Fashion-MNIST pipeline after the VQ-VAE (tokens -> classifier -> drafter -> refiner) in one
# go on a CUDA machine, each VAR stage bounded by a time budget (the step count it reached is
# logged in <stage>/final.json; rerun on any machine with `train_var.py --steps N` to repeat it).
#
#   FASHION_MNIST_DIR=... VARCODE_TRAIN_DIR=/tmp/vt VARCODE_MODELS_DIR=out/ bash tools/train/pipeline_gpu.sh
#
# Budgets (seconds) come from DRAFTER_BUDGET / REFINER_BUDGET. models/fashion_vae.pth must exist.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
W="${VARCODE_TRAIN_DIR:?set VARCODE_TRAIN_DIR}"
mkdir -p "$W"
VAE_SRC="models/fashion_vae.pth"
if [ -n "${VARCODE_MODELS_DIR:-}" ] && [ ! -e "$VARCODE_MODELS_DIR/fashion_vae.pth" ]; then
  mkdir -p "$VARCODE_MODELS_DIR" && cp "$VAE_SRC" "$VARCODE_MODELS_DIR/"
fi
t0=$(date +%s)
echo "== tokens ($(date -u +%T))";     $PY tools/train/tokenize_data.py ${TOKEN_ARGS:-}
echo "== classifier ($(date -u +%T))"; $PY tools/eval/train_classifier.py --epochs "${CLASSIFIER_EPOCHS:-6}" ${CLASSIFIER_ARGS:-}
echo "== drafter ($(date -u +%T))";    $PY tools/train/train_var.py --role drafter --time-budget "${DRAFTER_BUDGET:-200}" --val-every 500 ${VAR_ARGS:-}
echo "== refiner ($(date -u +%T))";    $PY tools/train/train_var.py --role refiner --time-budget "${REFINER_BUDGET:-100}" --val-every 500 ${VAR_ARGS:-}
echo "== done in $(( $(date +%s) - t0 )) s"
