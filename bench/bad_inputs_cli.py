"""Every bad data input the core refuses, tried through the real command line (a subprocess each).

    python bench/bad_inputs_cli.py

For each case: exit code, the single stderr line, whether a traceback appeared, and whether
anything was written outside (or inside) the run folder. Prints one JSON object on the last line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit.hostile_files import cases  # bench/hostile_files.py, next to this script

ROOT = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = cases(tmp / "inputs")
        work = tmp / "work"
        work.mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "VAE_LAB_CACHE_DIR": str(tmp / "cache")}
        before_inputs = snapshot(tmp / "inputs")
        for name, (path, extra, _) in table.items():
            r = subprocess.run([sys.executable, "-m", "vae", "train", "--data", str(path), "--out", str(work / "run"),
                                "--epochs", "1", *extra], capture_output=True, text=True, cwd=work, env=env)
            lines = r.stderr.strip().splitlines()
            rows.append({"case": name, "exit_code": r.returncode, "stderr_lines": len(lines),
                         "message": lines[-1] if lines else "", "traceback": "Traceback" in r.stderr,
                         "written": sorted(snapshot(work)) + sorted(snapshot(tmp / "inputs") - before_inputs)})
    ok = all(r["exit_code"] == 2 and r["stderr_lines"] == 1 and r["message"].startswith("error: ")
             and not r["traceback"] and not r["written"] for r in rows)
    for r in rows:
        print(f"| {r['case']} | {r['exit_code']} | `{r['message']}` |", file=sys.stderr)
    print(json.dumps({"all_ok": ok, "cases": rows}))


if __name__ == "__main__":
    main()
