"""``python -m vae datasets | eval | sample``: list the data sets, score a run, draw from its prior."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..data import list_datasets
from ..evaluate import evaluate, test_view
from ..latent import image_grid, sample_prior
from ..runs import load_run
from ..util import atomic_write_bytes, set_threads
from .common import add_data_args, load_run_data


def register(sub) -> None:
    sub.add_parser("datasets", help="list the data sets and where each comes from").set_defaults(func=cmd_datasets)

    ev = sub.add_parser("eval", help="evaluate a run on held-out data; prints one JSON object")
    ev.set_defaults(func=cmd_eval)
    ev.add_argument("run_dir")
    add_data_args(ev, default_data=None)
    ev.add_argument("--iw-samples", type=int, default=0, help="importance samples K for log p(x); >1 adds nll_iw")
    ev.add_argument("--batch-size", type=int, default=500)
    ev.add_argument("--seed", type=int, default=0)

    sm = sub.add_parser("sample", help="write a grid of images sampled from the prior")
    sm.set_defaults(func=cmd_sample)
    sm.add_argument("run_dir")
    sm.add_argument("--n", type=int, default=64)
    sm.add_argument("--out", required=True, help="PNG file to write")
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--label", type=int, default=None, help="conditional runs: the class (default: all, in rows)")
    sm.add_argument("--temperature", type=float, default=1.0)
    sm.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscaling of the grid")


def cmd_datasets(args) -> int:
    rows = list_datasets()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "ready" if r.get("available") else "needs files/download"
        print(f"{r['name']:<{width}}  {r['description']}  [{mark}; {r['source']}]")
    print("user data: a path to an .npz (x: [N,H,W] | [N,H,W,C] | [N,C,H,W], optional y), a .zip or a folder "
          "of PNG/JPEG images (one sub-folder per class, or flat)")
    return 0


def cmd_eval(args) -> int:
    set_threads(0)
    run = load_run(args.run_dir)
    data = load_run_data(args, run)
    res = evaluate(run.model, test_view(data.test, run.config.train), iw_samples=args.iw_samples,
                   batch_size=args.batch_size, seed=args.seed)
    if run.config.kind == "semisup" and data.test.y is not None:
        from ..usecases.semisup import error_rate
        res["test_error"] = error_rate(run.model, data.test)
    res["data"] = data.name
    print(json.dumps(res))
    return 0


def cmd_sample(args) -> int:
    from PIL import Image
    if not 1 <= args.n <= 10_000:
        raise ValueError(f"--n must be 1..10000, got {args.n}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {out}")
    run = load_run(args.run_dir)
    mcfg = run.config.model
    y, nrow = None, None
    if mcfg.conditional:
        if args.label is not None:
            if not 0 <= args.label < mcfg.num_classes:
                raise ValueError(f"--label must be 0..{mcfg.num_classes - 1}")
            y = np.full(args.n, args.label)
        else:  # one row per class; the remainder of n goes to class 0
            per = max(1, args.n // mcfg.num_classes)
            y = np.repeat(np.arange(mcfg.num_classes), per)[:args.n]
            y = np.concatenate([y, np.zeros(args.n - len(y), int)]) if len(y) < args.n else y
            nrow = per
    _, imgs = sample_prior(run.model, args.n, seed=args.seed, y=y, temperature=args.temperature)
    grid = image_grid(imgs, nrow, scale=max(1, args.scale))
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())
    print(json.dumps({"out": str(out), "n": args.n, "shape": list(grid.shape)}))
    return 0
