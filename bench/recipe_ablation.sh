#!/usr/bin/env bash
# Each choice in VAE Lab's default recipe, added one at a time, on full MNIST with 2 threads and
# nothing else running; one JSON line per recipe in bench/results/recipe_ablation.jsonl.
#   bash bench/recipe_ablation.sh ../shared/data
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: bench/recipe_ablation.sh DATA_DIR}
PY=${PYTHON:-python}
OUT=bench/results/recipe_ablation.jsonl
: > "$OUT"
run() {  # name, then recipe_search.py arguments
  local name=$1; shift
  echo "== $name" >&2
  "$PY" bench/recipe_search.py --data-dir "$DATA" "$@" | "$PY" -c \
    'import json,sys; d=json.loads(sys.stdin.read()); d["recipe"]=sys.argv[1]; print(json.dumps(d))' "$name" >> "$OUT"
}
OLD=(--decoder-hidden mirror --batch-size 256 --lr 2e-3 --lr-warmup 0 --no-bias-init)
for budget_latent in "98 20" "60 2"; do
  set -- $budget_latent
  B=(--budget "$1" --latent-dim "$2")
  run "$2-D previous default: 784-1024-D-1024-784, batch 256, lr 2e-3" "${B[@]}" "${OLD[@]}"
  run "$2-D + deeper decoder" "${B[@]}" --batch-size 256 --lr 2e-3 --lr-warmup 0 --no-bias-init
  run "$2-D + output bias at the mean pixel" "${B[@]}" --batch-size 256 --lr 2e-3 --lr-warmup 0
  run "$2-D + batch 512, lr 5e-3 (no warm-up)" "${B[@]}" --lr-warmup 0
  run "$2-D + lr warm-up over 15% = the default" "${B[@]}"
done
