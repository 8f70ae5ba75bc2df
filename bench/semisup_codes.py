"""How well do a semi-supervised run's codes separate the classes, without M2? A diagnosis of where M1+M2's error
comes from: if label spreading on the codes does no better than M2, the codes are the limit, not M2.

For one run folder (a ``semisup`` run or any VAE run), on the posterior means of all 60,000 training and 10,000
test images:

* ``knn_all_labels``: 5-nearest-neighbour test error with every training label (are classes neighbours at all?);
* ``knn_few_labels``: 1-nearest-neighbour test error from the labelled subset alone;
* ``label_spreading``: scikit-learn's LabelSpreading (10-NN graph over train + test codes, alpha 0.99) from the
  labelled subset, its test error;

each labelled subset the one ``python -m vae semisup --labels K --label-seed S`` draws. Prints one JSON object.

    python bench/semisup_codes.py runs/usecases/ss-d-k100 --data-dir ../shared/data --label-seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--label-seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.semi_supervised import LabelSpreading

    from vae.data import load_dataset
    from vae.runs import load_run
    from vae.usecases.common import balanced_subset
    from vae.usecases.semisup_stages import codes

    t0 = time.perf_counter()
    run = load_run(a.run_dir)
    data = load_dataset(run.config.data.name, data_dir=a.data_dir)
    mu = codes(run.model, data.train.x)[0].numpy()
    mt = codes(run.model, data.test.x)[0].numpy()
    ytr, yte = data.train.y.numpy(), data.test.y.numpy()
    out = {"run_dir": a.run_dir, "labels": a.labels, "latent_dim": int(mu.shape[1]),
           "knn_all_labels": float((KNeighborsClassifier(5).fit(mu, ytr).predict(mt) != yte).mean()), "subsets": []}
    both = np.concatenate([mu, mt])
    for s in (int(v) for v in a.label_seeds.split(",")):
        idx = balanced_subset(data.train.y, a.labels, s)
        knn = float((KNeighborsClassifier(1).fit(mu[idx], ytr[idx]).predict(mt) != yte).mean())
        y = -np.ones(len(both), int)
        y[idx] = ytr[idx]
        spread = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.99, max_iter=100).fit(both, y)
        out["subsets"].append({"label_seed": s, "knn_few_labels": knn,
                               "label_spreading": float((spread.transduction_[len(mu):] != yte).mean())})
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    import warnings
    warnings.filterwarnings("ignore", message="max_iter=")
    main()
