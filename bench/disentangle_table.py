"""Disentanglement on `shapes` (dSprites' factor grid): a plain VAE, a β-VAE and a β-TCVAE at one time budget, over
seeds; prints one JSON object (every run, then the mean and spread per objective).

    python bench/disentangle_table.py                                   # 3 objectives x 3 seeds, 900 s each
    python bench/disentangle_table.py --objectives btcvae --seeds 0,1,2 --parallel 2 --threads 1
    python bench/disentangle_table.py --budget 60 --data shapes32 --seeds 0    # a quick look
    python bench/disentangle_table.py --runs btcvae:0,btcvae:1 --parallel 2 --threads 1   # chosen runs

Each run is the command line a user types, in its own process:

    python -m vae train --data shapes --latent-dim 10 --hidden 256,128 --batch-size 128 --lr 1e-3 --activation silu \\
        --objective OBJ [--beta B | --tc-weight T] --epochs 1000 --time-budget BUDGET --seed S --threads N
    python -m vae disentangle RUN

The learning-rate schedule follows the clock (``--time-budget``), so a run trains for the budget whatever the
machine's speed; ``images`` says how many images it saw, ``cpu_s`` the CPU its process used (with ``--parallel 2``
two runs share the two cores, one thread each). ``mig``, ``dci``, ``factorvae_score`` and ``sap`` are
``python -m vae disentangle``'s (disentanglement_lib's definitions: posterior means, MIG on 20 bins, 10,000 test
images). ``load`` is the machine's 1-minute load average when each run ended.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# what each objective adds to the shared settings; the β-VAE's β is disentanglement_lib's middle value; the β-TCVAE's
# total-correlation weight was chosen on seed 0 at half the budget (MIG 0.13, 0.24, 0.33, 0.34, 0.32 for weights 6,
# 20, 40, 80, 150: README, "Disentanglement on shapes")
OBJECTIVES = {
    "vae": ["--objective", "elbo", "--beta", "1"],
    "betavae": ["--objective", "elbo", "--beta", "4"],
    "btcvae": ["--objective", "btcvae", "--tc-weight", "80"],
}
SHARED = ["--latent-dim", "10", "--hidden", "256,128", "--batch-size", "128", "--lr", "1e-3", "--epochs", "1000",
          "--quiet"]


def _vae(args: list[str], out: Path | None = None) -> tuple[dict, float]:
    """Run ``python -m vae ARGS``; (its JSON answer, its own CPU seconds: ``wait4``'s, so a run beside it in another
    thread is not counted)."""
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        proc = subprocess.Popen([sys.executable, "-m", "vae", *args], stdout=so, stderr=se, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    if proc.returncode != 0:
        raise RuntimeError(f"python -m vae {' '.join(args)} failed: {stderr.strip().splitlines()[-1:]}")
    if out is not None:
        out.write_text(stderr)
    return json.loads(stdout.strip().splitlines()[-1]), usage.ru_utime + usage.ru_stime


def one(objective: str, seed: int, a: argparse.Namespace, folder: Path) -> dict:
    run = folder / f"{objective}-s{seed}"
    t0 = time.perf_counter()
    trained, cpu = _vae(["train", "--data", a.data, *SHARED, "--activation", a.activation, *OBJECTIVES[objective],
                         "--seed", str(seed), "--time-budget", str(a.budget), "--threads", str(a.threads),
                         "--out", str(run)],
                        out=run.with_suffix(".log"))
    wall = time.perf_counter() - t0
    scores, _ = _vae(["disentangle", str(run), "--threads", str(a.threads)])
    history = json.loads((run / "metrics.json").read_text()).get("history") or {}
    return {"objective": objective, "seed": seed, "activation": a.activation, "run": str(run),
            "train_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "epochs": len(history.get("epochs", [])), "images": _images(history),
            "neg_elbo": round(trained["neg_elbo"], 2),
            "active_units": trained.get("active_units"), "mig": scores["mig"], "dci": scores.get("dci"),
            "factorvae_score": scores.get("factorvae_score"), "sap": scores.get("sap"),
            "mig_per_factor": {k: round(v["mig"], 3) for k, v in scores.get("per_factor", {}).items()},
            "load": round(os.getloadavg()[0], 2)}


def _images(history: dict) -> int | None:
    """Images seen: the run's last recorded optimizer step x its batch (128), or None when not recorded."""
    steps = history.get("steps") or []
    return int(steps[-1]["global_step"]) * 128 if steps else None


def summary(rows: list[dict]) -> dict:
    out = {}
    for obj in dict.fromkeys(r["objective"] for r in rows):
        migs = [r["mig"] for r in rows if r["objective"] == obj]
        out[obj] = {"mig_mean": round(statistics.fmean(migs), 3),
                    "mig_sd": round(statistics.stdev(migs), 3) if len(migs) > 1 else None,
                    "mig_min": round(min(migs), 3), "mig_max": round(max(migs), 3), "seeds": len(migs)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objectives", default="vae,betavae,btcvae", help=f"comma list of {', '.join(OBJECTIVES)}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=float, default=900.0, help="seconds of training per run")
    ap.add_argument("--data", default="shapes")
    ap.add_argument("--activation", default="silu",
                    help="the MLPs' activation for every run, any that `python -m vae train --activation` takes")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run")
    ap.add_argument("--parallel", type=int, default=1, help="runs at once")
    ap.add_argument("--runs", default="", help="instead of objectives x seeds: an explicit list, e.g. btcvae:0,vae:0")
    ap.add_argument("--keep", default="", help="a folder to keep the runs in (default: a temporary one)")
    a = ap.parse_args()
    objectives = [o.strip() for o in a.objectives.split(",") if o.strip()]
    jobs = [(o, int(s)) for s in a.seeds.split(",") for o in objectives]
    if a.runs:
        jobs = [(r.split(":")[0].strip(), int(r.split(":")[1])) for r in a.runs.split(",") if r.strip()]
    unknown = [o for o, _ in jobs if o not in OBJECTIVES]
    if unknown:
        ap.error(f"unknown objective {unknown[0]!r}; accepted: {', '.join(OBJECTIVES)}")
    with tempfile.TemporaryDirectory(prefix="vae-lab-dis-") as tmp:
        folder = Path(a.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(max(1, a.parallel)) as pool:
            rows = list(pool.map(lambda job: one(*job, a, folder), jobs))
    print(json.dumps({"data": a.data, "activation": a.activation, "budget_s": a.budget, "threads": a.threads,
                      "parallel": a.parallel,
                      "runs": rows, "summary": summary(rows)}))


if __name__ == "__main__":
    main()
