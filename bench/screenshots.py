"""Screenshots of every page in Chromium for the README: assets/screenshots/<page>.png.

    python bench/screenshots.py                 # light theme, 1280x900
    python bench/screenshots.py --dark --out /tmp/shots

Uses the demo runs (the 2-D demo is active at start); the Train page is shot after a short
training run (quick demo settings) so its charts show; the Dimensions page shows the shapes32 beta-TCVAE demo with
the plain VAE demo beside it, in a window tall enough for the whole page; foreign_map is the Latent map of the
pytorch/examples VAE trained by its own loop and logged with vae.track (the README's "Debug your own VAE"). Runs go
to a temporary folder. ``--pair A,B`` copies two run folders there (e.g. a β-TCVAE and a β-VAE kept by
``bench/disentangle_table.py --keep``) and shoots the Dimensions page on A with B beside it: dimensions_pair.png.
``--two-layers RUN`` copies a run with two stochastic layers (``bench/binarized_nll.py --latent-layers 2 --out RUN``)
there and shoots Inside a VAE (the whole page: both layers' rows, the loss, the KL per layer) and the Latent map on
it: two_layer_inside.png and two_layer_map.png.
``--app-root DIR`` serves another checkout (an older commit in a ``git worktree``) for before/after pictures; its
runs are trained by that checkout's own command line. Two shots exist for that: compare_replay (Compare's replay of
a run trained 5 epochs) and doctor (the Doctor on a run trained to collapse, β = 50), e.g.
``git worktree add /tmp/before 7f16ff9 && python bench/screenshots.py --app-root /tmp/before --pages
compare_replay,doctor --out /tmp/before-shots``.
Prints one JSON object: {"files": [...]}.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path: labkit, ui)

from labkit.appserver import ROOT, app_server, chromium

FOREIGN = "pytorch-examples-vae"   # the run foreign_map shows: logged with vae.track from its own loop (log_foreign)
PAGES = [("home", ""), ("train", "train"), ("inside", "inside"), ("reconstructions", "reconstructions"),
         ("latent_map", "latent_map"), ("latent_layers", "latent_map"),
         ("sliders", "sliders"), ("generate", "generate"), ("compare", "compare"), ("loss_forces", "loss_forces"),
         ("dimensions", "dimensions?run=shapes32-tcvae-10d&vs=shapes32-vae-10d"),
         ("foreign_map", f"latent_map?run={FOREIGN}")]
# shot only when asked (--pages): runs trained by the served checkout's own command line, for before/after pictures
CLI_RUNS = {"compare_replay": ("replay", "compare", ["--epochs", "5", "--latent-dim", "2"]),
            "doctor": ("collapse", "doctor?run=collapse", ["--epochs", "10", "--latent-dim", "8", "--beta", "50"])}
STRIPS = "keys => keys.every(k => window.__vaeStrips && window.__vaeStrips(k) && window.__vaeStrips(k).live())"


READY = "[data-testid='stSidebar'] [data-testid='stSelectbox']"   # the run picker: app.py has run


def settle(page, extra_ms: int = 800) -> None:
    """Wait until the app's own script has drawn the page and stopped running."""
    page.wait_for_selector(READY, timeout=60_000)
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    page.wait_for_timeout(300)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
    page.wait_for_timeout(extra_ms)


def log_foreign(runs: Path) -> None:
    """The pytorch/examples MNIST VAE (labkit/examples_vae.py), trained 5 epochs by its own loop on the
    built-in mnist5k digits and logged with vae.track into the runs folder: the README's foreign latent map."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from track_overhead import train_epoch

    import vae
    from labkit.examples_vae import VAE
    from vae.data import load_dataset
    torch.manual_seed(1)
    data = load_dataset("mnist5k")
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(data.train.x.float() / 255), batch_size=128, shuffle=True)
    with vae.track(runs / FOREIGN, model, data.test.x, labels=data.test.y, output="probs") as lab:
        for epoch in range(1, 6):
            lab.log(epoch, **train_epoch(model, opt, loader))


def train_cli(root: Path, out: Path, flags: list[str]) -> None:
    """A run on the built-in mnist5k digits trained by ROOT's own ``python -m vae train`` (so an older checkout
    reads the folder its own code wrote)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-m", "vae", "train", "--data", "mnist5k", "--threads", "1", "--seed", "0",
                    "--out", str(out), *flags], cwd=root, env=env, check=True, capture_output=True, timeout=900)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "assets" / "screenshots"))
    ap.add_argument("--dark", action="store_true")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--full", action="store_true", help="whole page, not just the first screen")
    ap.add_argument("--pages", default=",".join(n for n, _ in PAGES))
    ap.add_argument("--pair", default="", help="RUN_A,RUN_B: two run folders for dimensions_pair.png (A, B beside)")
    ap.add_argument("--two-layers", default="", help="RUN: a two-layer run folder for two_layer_inside.png and "
                                                      "two_layer_map.png")
    ap.add_argument("--launcher", default=None,
                    help="VAE_LAB_TRAIN_LAUNCHER for the server (e.g. 'torchrun --standalone --nproc-per-node 2'): "
                         "the Train page is then shot while its run trains under that launcher (train-launcher.png)")
    ap.add_argument("--app-root", default=None, help="serve this checkout of the app instead (before/after pictures)")
    args = ap.parse_args()
    root = Path(args.app_root).resolve() if args.app_root else ROOT
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.pages.split(","))
    files = []
    env = {"VAE_LAB_TRAIN_LAUNCHER": args.launcher} if args.launcher else {}
    with (tempfile.TemporaryDirectory() as runs, app_server(env={"VAE_LAB_RUNS_DIR": runs, **env}, root=root) as url,
          chromium() as browser):
        ctx = browser.new_context(viewport={"width": args.width, "height": args.height},
                                  color_scheme="dark" if args.dark else "light", device_scale_factor=1)
        page = ctx.new_page()
        if "foreign_map" in wanted:
            log_foreign(Path(runs))
        pages = list(PAGES)
        for name, (run, path, flags) in CLI_RUNS.items():
            if name in wanted:
                train_cli(root, Path(runs) / run, flags)
                pages.append((name, path))
        if args.pair:
            a, b = (Path(p) for p in args.pair.split(","))
            for src in (a, b):
                shutil.copytree(src, Path(runs) / src.name)
            pages.append(("dimensions_pair", f"dimensions?run={a.name}&vs={b.name}"))
            wanted.add("dimensions_pair")
        if args.two_layers:
            two = Path(args.two_layers)
            shutil.copytree(two, Path(runs) / two.name)
            pages += [("two_layer_inside", f"inside?run={two.name}"), ("two_layer_map", f"latent_map?run={two.name}")]
            wanted |= {"two_layer_inside", "two_layer_map"}
        for name, path in pages:
            if name not in wanted:
                continue
            # the Dimensions page is a long one: ten rows of strips per run, then the heat maps
            tall = {"dimensions": 2100, "dimensions_pair": 2100, "foreign_map": 1250,    # foreign_map: the whole map
                    "two_layer_inside": 2750, "two_layer_map": 1250, "doctor": 1700}
            page.set_viewport_size({"width": args.width, "height": tall.get(name, args.height)})
            page.goto(f"{url}/{path}")
            settle(page)
            if name == "train":
                page.get_by_role("button", name="Quick demo settings").click()
                settle(page, 300)
                page.get_by_role("button", name="Start").click()
                if args.launcher:          # shot live, once the launched processes have trained a few epochs
                    page.wait_for_function("[...document.querySelectorAll(\"[data-testid='stProgress']\")]"
                                           ".some(e => /Epoch ([4-9]|\\d\\d)/.test(e.innerText))", timeout=120_000)
                    page.wait_for_timeout(1500)
                    name = "train-launcher"
                else:
                    page.get_by_text("Training finished").first.wait_for(timeout=120_000)
                    settle(page, 1500)
                    page.locator("[data-testid='stToast']").first.wait_for(state="detached", timeout=30_000)
            if name == "loss_forces":     # ten steps, then beta 4 so the KL arrows are long enough to see
                page.get_by_role("button", name="Ten steps").click()
                settle(page, 500)
                beta = page.get_by_role("spinbutton", name="β (next step on)")  # the Loss forces page's own β
                beta.fill("4")
                beta.press("Enter")
                settle(page, 500)
            if name == "latent_layers":   # the layers on, and one hole clicked and decoded
                for layer in ("Posterior ellipses", "Density", "Holes"):
                    page.locator("[data-testid='stMain'] [data-testid='stButtonGroup'] button", has_text=layer).click()
                    settle(page, 300)
                i = page.evaluate("() => document.querySelector(\"[data-testid='stMain'] .js-plotly-plot\").data"
                                  ".filter(t => t.type === 'scatter')"
                                  ".findIndex(t => (t.name || '').startsWith('holes'))")
                hole = page.locator("[data-testid='stMain'] .js-plotly-plot").first.locator(
                    ".scatterlayer .trace").nth(i).locator(".points path")
                hole.nth(0).click(force=True)
                page.get_by_text("Left: decoded at the hole").wait_for()
                settle(page, 300)
            if name == "compare_replay":  # the replay's section, at the top of the window
                page.get_by_text("Replay a run's training").first.evaluate("e => e.scrollIntoView()")
                settle(page, 500)
            if name in ("latent_map", "latent_layers", "sliders", "foreign_map", "two_layer_map"):
                page.wait_for_timeout(1500)  # the in-browser decoder paints
            if name.startswith("dimensions"):    # both runs' strips decoded in the browser, then the page settled again
                page.wait_for_function(STRIPS, arg=["dims.strips.0", "dims.strips.1"], timeout=60_000)
                settle(page, 1500)
            f = out / f"{name}{'-dark' if args.dark else ''}.png"
            page.screenshot(path=str(f), full_page=args.full)
            files.append(str(f))
            if name == "train-launcher":   # jobs outlive their server by design: stop this one before leaving
                page.get_by_role("button", name="Stop").click()
                page.get_by_text("Stopped by request").first.wait_for(timeout=60_000)
        ctx.close()
    print(json.dumps({"files": files}))


if __name__ == "__main__":
    main()
