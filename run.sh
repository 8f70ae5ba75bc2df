#!/usr/bin/env bash
# VAE Lab's one entry point: sets up a virtual environment on first use, then runs.
#   ./run.sh app [ARGS]     set up and serve the app (http://localhost:8501, this machine only) on the offline default
#   ./run.sh dev [ARGS]     the same, reloading pages when a source file is saved (for editing the code)
#   ./run.sh test [ARGS]    set up and run the linter and the whole test suite (browser tests need /usr/bin/chromium)
#   ./run.sh vae ARGS       the command line, e.g. ./run.sh vae train --epochs 5 (paths are relative to where you are)
#   ./run.sh python ARGS    the environment's python (benchmarks: ./run.sh python bench/train_vs_baseline.py)
# The environment is .venv in the checkout (VAE_LAB_VENV to move it); the project is installed into it in
# editable mode with the exact versions CI tested (constraints.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")" && pwd)"
VENV="${VAE_LAB_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

setup() {  # $1: the extras to install (app | test)
  if [ ! -x "$PY" ]; then
    echo "setting up $VENV (first run only; torch is large, allow a few minutes)" >&2
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.vae-lab-$1.sha"
  local want
  want=$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$PY" -m pip install --disable-pip-version-check -q -c "$ROOT/constraints.txt" -e "$ROOT[$1]"
    echo "$want" > "$stamp"
  fi
}

# The serving settings (no file watcher, no forced gc.collect(2) after each script run, beside the frozen
# start-up heap of ui/shell.py) live in .streamlit/config.toml, chosen by measurement (README, "Serving a
# class"), so every way of starting the app serves the same; dev turns the watcher back on.
# No traceback or server path in the browser (the terminal keeps them); ./run.sh dev shows them to whoever edits.
SERVE=(--browser.gatherUsageStats false --client.showErrorDetails none)
# Where the server listens: this machine only (127.0.0.1) unless VAE_LAB_ADDRESS names another address, e.g.
# VAE_LAB_ADDRESS=0.0.0.0 for every network interface (README, "Serving a class": a room gets nginx with TLS and a
# login in front instead). A --server.address among ARGS comes later on the command line and wins.
BIND=(--server.address "${VAE_LAB_ADDRESS:-127.0.0.1}")

cmd="${1:-app}"
shift || true
case "$cmd" in
  app)
    setup app
    cd "$ROOT"   # .streamlit/config.toml is read from the working folder
    exec "$PY" -m streamlit run app.py "${SERVE[@]}" "${BIND[@]}" "$@" ;;
  dev)
    setup app
    cd "$ROOT"
    exec "$PY" -m streamlit run app.py --server.fileWatcherType auto --server.runOnSave true \
      --browser.gatherUsageStats false --client.showErrorDetails full "${BIND[@]}" "$@" ;;
  test)
    setup test
    cd "$ROOT"
    "$PY" -m ruff check .
    exec "$PY" -m pytest -q "$@" ;;
  vae)
    setup app
    exec "$PY" -m vae "$@" ;;
  python)
    setup test
    exec "$PY" "$@" ;;
  *)
    echo "usage: ./run.sh app | dev | test [pytest args] | vae ARGS | python ARGS" >&2
    exit 2 ;;
esac
