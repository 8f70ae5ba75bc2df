"""Redraw the use-case figures in assets/usecases/ from the JSON results the app shows, in assets/results/.

    python bench/usecases_figures.py

Each JSON file is the last stdout line of the command listed in bench/usecases.md; this script
only reads them (no training), so the figures always match the numbers in the tables.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from vae.usecases.plots import plot_anomaly, plot_anomaly_all, plot_probe, plot_rd, plot_semisup

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "assets" / "results"
OUT = ROOT / "assets" / "usecases"


def load(name: str):
    p = RESULTS / f"{name}.json"
    if not p.is_file() or not p.read_text().strip():
        return None
    return json.loads(p.read_text().strip().splitlines()[-1])


def main() -> int:
    made = []
    seeds = load("usecase_seeds")         # the probe and rate-distortion over seeds, with error bars
    if seeds:
        made.append(plot_rd(seeds["rd"], OUT / "rate_distortion.png"))
        made.append(plot_probe(seeds["probe"], OUT / "probe.png"))
    rows = [r for r in (load(name) for name in ("semisup_k100", "semisup_k600", "semisup_k1000", "semisup_all")) if r]
    if rows:
        made.append(plot_semisup(rows, OUT / "semisup.png"))
    anomaly = load("anomaly")
    if anomaly:
        made.append(plot_anomaly(anomaly, OUT / "anomaly_per_class.png"))
    seeds = load("anomaly_seeds")
    if seeds:
        made.append(plot_anomaly_all(seeds, OUT / "anomaly_auroc_by_digit.png"))
    aug = load("augment")
    if aug and aug.get("export") and Path(ROOT / aug["export"]["png"]).is_file():
        shutil.copyfile(ROOT / aug["export"]["png"], OUT / "augment_samples.png")
        made.append(OUT / "augment_samples.png")
    print(json.dumps({"figures": [str(p.relative_to(ROOT)) for p in made]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
