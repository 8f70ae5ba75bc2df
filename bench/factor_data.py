"""Cost of the generated factor data sets and of the disentanglement metrics; prints one JSON object.

    python bench/factor_data.py                    # every generated set, then the metrics on 10,000 x 10 codes
    python bench/factor_data.py --sets shapes32    # one set

Each data set loads in a fresh process (``load_dataset(name)``, the default 90/10 split), which reports its
wall time and its peak resident memory above the interpreter with vae imported. The metrics run on 10,000
synthetic codes of 10 dimensions against dSprites-sized factors (3, 6, 40, 32, 32 values): five dimensions
carry one factor each with noise, five are noise.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, resource, time
import vae
from vae.data import load_dataset
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
d = load_dataset({name!r})
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": round(wall, 2), "peak_rss_mb_above_import": round((peak - base) / 1024),
                  "images_mb": round((d.train.x.numel() + d.test.x.numel()) / 2**20),
                  "train": list(d.train.x.shape), "test": list(d.test.x.shape)}}))
"""


def load_costs(names: list[str]) -> dict:
    out = {}
    for name in names:
        r = subprocess.run([sys.executable, "-c", CHILD.format(name=name)], capture_output=True, text=True,
                           cwd=ROOT, check=True)
        out[name] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def metric_costs(n: int = 10_000, seed: int = 0) -> dict:
    import numpy as np

    from vae import disentangle as D
    rng = np.random.default_rng(seed)
    sizes = np.array([3, 6, 40, 32, 32])
    f = np.stack([rng.integers(0, k, n) for k in sizes], axis=1)
    z = np.concatenate([f / sizes + 0.05 * rng.standard_normal(f.shape), rng.standard_normal((n, 5))], axis=1)
    D.dci(z[:200], f[:200])                       # imports scikit-learn outside the timings
    calls = {"mig": lambda: D.mig(z, f), "dci (extra-trees)": lambda: D.dci(z, f),
             "factorvae_score": lambda: D.factorvae_score(z, f), "sap": lambda: D.sap(z, f),
             "sap (discrete)": lambda: D.sap(z, f, discrete=True),
             "dimension_report": lambda: D.dimension_report(z, f, list("abcde")),
             "report (all of them)": lambda: D.report(z, f, list("abcde"))}
    out = {}
    for name, call in calls.items():
        t = time.perf_counter()
        call()
        out[name] = round(time.perf_counter() - t, 3)
    return {"codes": [n, 10], "seconds": out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="shapes32,colour-shapes,shapes", help="comma-separated generated sets")
    p.add_argument("--no-metrics", action="store_true")
    args = p.parse_args()
    res = {"load": load_costs([s for s in args.sets.split(",") if s])}
    if not args.no_metrics:
        res["metrics"] = metric_costs()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
