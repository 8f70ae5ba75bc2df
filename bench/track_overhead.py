"""What ``vae.track`` costs a user's own training loop: the pytorch/examples MNIST VAE trained at its defaults, with
and without tracking, side by side in one invocation. Prints one JSON object.

    python bench/track_overhead.py --data-dir /work/shared/data            # full MNIST, 10 epochs a side
    python bench/track_overhead.py --data-dir /work/shared/data --epochs 1 --max-train 5000   # a quick check

The model and the loop are pytorch/examples' ``vae/main.py`` (``VAE`` below is its model verbatim; the loop is its
``train`` without the printing): batches of 128 from a shuffled DataLoader, Adam at 1e-3, binary cross-entropy plus
the closed-form KL, summed. Two copies start from the same weights; their epochs alternate (plain, tracked, plain,
tracked, ...) so that the machine's load falls on both alike. The tracked copy runs inside ``vae.track`` with the
MNIST test set (``labels=``, ``output="probs"``) and calls ``lab.log(epoch, loss=..., recon=..., kl=...)`` after
each epoch; its epoch time includes that call. Reported:

- ``export_s``: opening the tracker (checks, the ONNX export of encode and decode): once per run, before epoch 1;
- ``epoch_s``: each arm's epoch times, and their medians; ``log_s``: each ``lab.log`` (the test evaluation on up to
  2,000 test images, the snapshot and the weights written);
- ``overhead``: the tracked arm's median epoch over the plain arm's, minus 1 (the issue's budget: 5 %).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import _root  # noqa: F401, I001  (the repository root on sys.path)
import torch
from torch.utils.data import DataLoader, TensorDataset

from labkit.examples_vae import VAE, loss_function  # the example's model and loss, as written there


def train_epoch(model, optimizer, loader) -> dict[str, float]:
    """pytorch/examples' ``train(epoch)``: one pass, one Adam step per batch; the epoch's mean terms per image."""
    model.train()
    total = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    n = 0
    for (data,) in loader:
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        bce, kld = loss_function(recon_batch, data, mu, logvar)
        loss = bce + kld
        loss.backward()
        optimizer.step()
        for k, v in (("loss", loss), ("recon", bce), ("kl", kld)):
            total[k] += v.item()
        n += len(data)
    return {k: v / n for k, v in total.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="folder with MNIST/raw/*.gz (torchvision's layout)")
    ap.add_argument("--epochs", type=int, default=10, help="epochs per arm (pytorch/examples' default: 10)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-train", type=int, default=None, help="first N training images (default: all 60,000)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--seed", type=int, default=1, help="pytorch/examples' default seed")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import vae
    from vae.data import load_dataset
    data = load_dataset("mnist", data_dir=args.data_dir, max_train=args.max_train, download=False)
    x = data.train.x.float() / 255                      # what transforms.ToTensor() gives: [N, 1, 28, 28] in [0, 1]
    torch.manual_seed(args.seed)
    plain, tracked = VAE(), VAE()
    tracked.load_state_dict(plain.state_dict())
    opts = {id(m): torch.optim.Adam(m.parameters(), lr=args.lr) for m in (plain, tracked)}
    g = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(TensorDataset(x), batch_size=args.batch_size, shuffle=True, generator=g)
    times: dict[str, list[float]] = {"plain": [], "tracked": [], "log": []}
    with tempfile.TemporaryDirectory(prefix="vae-track-overhead-") as tmp:
        t0 = time.perf_counter()
        lab = vae.track(Path(tmp) / "run", tracked, data.test.x, labels=data.test.y, output="probs")
        export_s = time.perf_counter() - t0
        with lab:
            for epoch in range(1, args.epochs + 1):
                t0 = time.perf_counter()
                train_epoch(plain, opts[id(plain)], loader)
                times["plain"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                figures = train_epoch(tracked, opts[id(tracked)], loader)
                t1 = time.perf_counter()
                lab.log(epoch, **figures)
                t2 = time.perf_counter()
                times["tracked"].append(t2 - t0)
                times["log"].append(t2 - t1)
        test_neg_elbo = lab.epochs[-1]["test"]["neg_elbo"]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "model": "pytorch/examples vae/main.py", "n_train": len(x), "n_test": len(data.test.x),
        "batch_size": args.batch_size, "lr": args.lr, "epochs": args.epochs, "threads": torch.get_num_threads(),
        "export_s": round(export_s, 3),
        "epoch_s": {"plain": [round(t, 3) for t in times["plain"]], "tracked": [round(t, 3) for t in times["tracked"]],
                    "plain_median": round(med["plain"], 3), "tracked_median": round(med["tracked"], 3)},
        "log_s": {"each": [round(t, 3) for t in times["log"]], "median": round(med["log"], 3)},
        "overhead": round(med["tracked"] / med["plain"] - 1, 4),
        "log_share_of_plain_epoch": round(med["log"] / med["plain"], 4),
        "tracked_test_neg_elbo_last": round(test_neg_elbo, 2),
        "machine": platform.machine(), "cpus": os.cpu_count(), "load_avg": round(os.getloadavg()[0], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
