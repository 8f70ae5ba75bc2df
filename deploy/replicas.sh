#!/usr/bin/env bash
# Serve VAE Lab as N replicas on consecutive ports (8501, 8502, ...) of 127.0.0.1, sharing one runs folder, for
# deploy/nginx.conf in front (only nginx faces the network). Each replica is the server ./run.sh app starts, with
# the serving settings of deploy/serve.env (no tracebacks in the browser). Stop with Ctrl-C.
#   ./deploy/replicas.sh [N=2] [FIRST_PORT=8501]
# Training: each replica runs at most VAE_LAB_MAX_JOBS training processes at once, so this sets it to the
# machine's cores divided among the replicas (at least 1 each): the whole machine trains one job per core.
# Set VAE_LAB_MAX_JOBS yourself to choose another number per replica.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${1:-2}"
FIRST="${2:-8501}"
if [[ ! "$N" =~ ^[1-9][0-9]*$ || ! "$FIRST" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: ./deploy/replicas.sh [N] [FIRST_PORT]  (whole numbers)" >&2
  exit 2
fi
cores="$(nproc)"
per=$(( cores / N > 0 ? cores / N : 1 ))
export VAE_LAB_MAX_JOBS="${VAE_LAB_MAX_JOBS:-$per}"
export VAE_LAB_RUNS_DIR="${VAE_LAB_RUNS_DIR:-$ROOT/runs}"
set -a
# shellcheck source=serve.env
. "$ROOT/deploy/serve.env"
set +a
echo "$N replicas on 127.0.0.1:$FIRST-$((FIRST + N - 1)), $VAE_LAB_MAX_JOBS training job(s) each" \
     "($((N * VAE_LAB_MAX_JOBS)) at once on $cores cores), runs in $VAE_LAB_RUNS_DIR" >&2
"$ROOT/run.sh" vae --help >/dev/null                        # set up the environment once, before the replicas
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in $(seq 0 $((N - 1))); do
  VAE_LAB_ADDRESS=127.0.0.1 "$ROOT/run.sh" app --server.port $((FIRST + i)) &
  pids+=($!)
done
wait
