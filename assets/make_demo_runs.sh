#!/usr/bin/env bash
# Regenerate the pretrained demo runs the app opens with (assets/runs/<name>/), using the
# project's own command line on the offline default data set (mnist5k: 4,500 train / 500 test
# real MNIST digits). Each run takes about a minute on 2 CPU cores and its folder is under 3 MB
# (MLP 784-256-128: ~0.47 M parameters, float32 safetensors).
#   assets/make_demo_runs.sh            # all three
#   THREADS=2 assets/make_demo_runs.sh  # use more cores
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
THREADS="${THREADS:-1}"
OUT=assets/runs
mkdir -p "$OUT"

train() {  # $1: run name, rest: extra arguments
  local name="$1"; shift
  local tmp="$OUT/.$name.tmp"
  rm -rf "$tmp"
  "$PY" -m vae train --data mnist5k --model mlp --hidden 256,128 --batch-size 128 --lr 1e-3 \
    --lr-schedule cosine --seed 0 --threads "$THREADS" --quiet --out "$tmp" "$@"
  rm -rf "${OUT:?}/$name"
  mv "$tmp" "$OUT/$name"
}

# 2-D: the latent map and the manifold of digits; a short KL warm-up keeps the classes apart
train mnist-2d --latent-dim 2 --epochs 60 --warmup 5
# 16-D: sharper reconstructions, sliders ordered by KL per dimension
train mnist-16d --latent-dim 16 --epochs 60 --warmup 5
# conditional 2-D: the label carries the class, the latent carries the style (Generate per class)
train mnist-cvae-2d --latent-dim 2 --epochs 60 --warmup 5 --conditional
du -sh "$OUT"/*
