#!/usr/bin/env bash
# VAE Lab's one entry point: sets up a virtual environment on first use, then runs.
#   ./run.sh app            set up and open the app (http://localhost:8501) on the offline default
#   ./run.sh test [ARGS]    set up and run the whole test suite (browser tests need /usr/bin/chromium)
#   ./run.sh vae ARGS       the command line, e.g. ./run.sh vae train --epochs 5
#   ./run.sh python ARGS    the environment's python (benchmarks: ./run.sh python bench/train_vs_baseline.py)
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VAE_LAB_VENV:-.venv}"
PY="$VENV/bin/python"

setup() {  # $1: requirements file
  if [ ! -x "$PY" ]; then
    echo "setting up $VENV (first run only; torch is large, allow a few minutes)" >&2
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.vae-lab-$(basename "$1").sha"
  local want
  want=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$PY" -m pip install --disable-pip-version-check -q -r "$1"
    echo "$want" > "$stamp"
  fi
}

cmd="${1:-app}"
shift || true
case "$cmd" in
  app)
    setup requirements.txt
    exec "$PY" -m streamlit run app.py --browser.gatherUsageStats false "$@" ;;
  test)
    setup requirements-dev.txt
    exec "$PY" -m pytest -q "$@" ;;
  vae)
    setup requirements.txt
    exec "$PY" -m vae "$@" ;;
  python)
    setup requirements-dev.txt
    exec "$PY" "$@" ;;
  *)
    echo "usage: ./run.sh app | test [pytest args] | vae ARGS | python ARGS" >&2
    exit 2 ;;
esac
