#!/usr/bin/env bash
# Regenerate the pretrained demo runs the app opens with (assets/runs/<name>/), using the
# project's own command line, offline: three on mnist5k (4,500 train / 500 test real MNIST
# digits; MLP 784-256-128, ~0.47 M parameters) and two on shapes32 (46,080 generated sprites
# whose five factors are known; 10-D MLP 1024-256-128, ~0.59 M parameters) for the Dimensions
# page. Each run takes a few minutes on 2 CPU cores; each folder keeps only what the app reads
# (config.json, metrics.json, model.safetensors: under 3 MB).
#   assets/make_demo_runs.sh                                      # all five
#   assets/make_demo_runs.sh shapes32-vae-10d shapes32-tcvae-10d   # only these
#   THREADS=2 assets/make_demo_runs.sh                            # use more cores
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
THREADS="${THREADS:-1}"
OUT=assets/runs
ONLY=" $* "
mkdir -p "$OUT"

run() {  # $1: run name, rest: the whole `vae train` command line after the common options
  local name="$1"; shift
  [[ "$ONLY" == "  " || "$ONLY" == *" $name "* ]] || return 0
  local tmp="$OUT/.$name.tmp"
  rm -rf "$tmp"
  "$PY" -m vae train --seed 0 --threads "$THREADS" --quiet --out "$tmp" "$@"
  # the app reads these three; the job files, checkpoint and snapshots stay out of the repository
  find "$tmp" -mindepth 1 -maxdepth 1 ! -name config.json ! -name metrics.json ! -name model.safetensors \
    -exec rm -rf {} +
  rm -rf "${OUT:?}/$name"
  mv "$tmp" "$OUT/$name"
  du -sh "$OUT/$name"
}

mnist() {  # $1: run name, rest: extra arguments
  local name="$1"; shift
  run "$name" --data mnist5k --model mlp --hidden 256,128 --batch-size 128 --lr 1e-3 --lr-schedule cosine "$@"
}

shapes() {  # $1: run name, rest: extra arguments
  local name="$1"; shift
  run "$name" --data shapes32 --model mlp --latent-dim 10 --hidden 256,128 --batch-size 128 --lr 1e-3 "$@"
}

# 2-D: the latent map and the manifold of digits; a short KL warm-up keeps the classes apart
mnist mnist-2d --latent-dim 2 --epochs 60 --warmup 5
# 16-D: sharper reconstructions, sliders ordered by KL per dimension
mnist mnist-16d --latent-dim 16 --epochs 60 --warmup 5
# conditional 2-D: the label carries the class, the latent carries the style (Generate per class)
mnist mnist-cvae-2d --latent-dim 2 --epochs 60 --warmup 5 --conditional
# the Dimensions page side by side: the guided experiment's two runs (ui/scenarios.py, "Make the dimensions mean
# something": the same data, model and settings), trained for 30 epochs instead of 60 seconds
shapes shapes32-vae-10d --epochs 30
shapes shapes32-tcvae-10d --epochs 30 --objective btcvae --tc-weight 20
