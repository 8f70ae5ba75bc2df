#!/usr/bin/env bash
# Serve VAE Lab as N replicas on consecutive ports (8501, 8502, ...) sharing one runs folder, for a load
# balancer in front (deploy/nginx.conf). Each replica is the same server ./run.sh app starts; stop with Ctrl-C.
#   ./deploy/replicas.sh [N=2] [FIRST_PORT=8501]
# Per replica: VAE_LAB_MAX_JOBS training processes at once (default one per core), so N replicas on one
# machine can run N x VAE_LAB_MAX_JOBS; set it so that their sum fits the machine.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${1:-2}"
FIRST="${2:-8501}"
export VAE_LAB_RUNS_DIR="${VAE_LAB_RUNS_DIR:-$ROOT/runs}"
"$ROOT/run.sh" python -c "import vae" >/dev/null          # set up the environment once, before the replicas
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in $(seq 0 $((N - 1))); do
  "$ROOT/run.sh" app --server.port $((FIRST + i)) --server.address 127.0.0.1 --server.headless true &
  pids+=($!)
done
wait
