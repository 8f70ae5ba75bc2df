"""``python -m vae disentangle RUN``: what each latent dimension of a run carries, as one JSON object.

On data with known factors (``shapes``, ``shapes32``, ``colour-shapes``): MIG, DCI, the FactorVAE score, SAP
and, per dimension, its KL, whether it is active, its mutual information with each factor and the factor it
carries most (:func:`vae.disentangle.report`). On other data (MNIST, a user's folder): KL, activity and the
mutual information with the class labels per dimension (:func:`vae.disentangle.label_report`). The codes are
the posterior means of the run's own test images (at most ``--n``), the metrics' randomness is ``--seed``.
"""
from __future__ import annotations

import json
import sys

from ..disentangle import DCI_MODELS, label_report, report
from ..evaluate import evaluate, test_view
from ..runs import load_run
from ..util import set_threads
from .common import add_data_args, load_run_data

MAX_N = 100_000


def register(sub) -> None:
    p = sub.add_parser("disentangle", help="what each latent dimension carries: MIG, DCI, FactorVAE score, SAP and "
                                           "per-dimension mutual information; prints one JSON object")
    p.set_defaults(func=cmd_disentangle)
    p.add_argument("run_dir")
    add_data_args(p, default_data=None)
    p.add_argument("--n", type=int, default=10_000, help=f"test images to encode (1..{MAX_N:,})")
    p.add_argument("--seed", type=int, default=0, help="seed of the metrics' sampling and classifiers")
    p.add_argument("--dci-model", choices=DCI_MODELS, default=DCI_MODELS[0],
                   help="DCI's classifier: extremely randomised trees (seconds) or disentanglement_lib's gradient "
                        "boosted trees (minutes)")
    p.add_argument("--threads", type=int, default=0)


def cmd_disentangle(args) -> int:
    if not 1 <= args.n <= MAX_N:
        raise ValueError(f"--n must be 1..{MAX_N}, got {args.n}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    set_threads(args.threads)
    run = load_run(args.run_dir)
    if args.max_train is None:
        args.max_train = 1                      # only the test images are scored: render or read no more
    args.max_test = min(args.n, args.max_test or args.n, run.config.data.max_test or args.n)
    data = load_run_data(args, run)
    ev = evaluate(run.model, test_view(data.test, run.config.train), return_latent=True, seed=args.seed)
    mu, kl = ev["latent"]["mu"], ev["kl_per_dim"]
    if data.has_factors:
        out = report(mu, data.test.factors.numpy(), data.factor_names, kl_per_dim=kl, seed=args.seed,
                     dci_model=args.dci_model)
        for r in sorted(out["dims"], key=lambda r: -(r["kl"] or 0.0)):
            print(f"dim {r['dim']}: KL {r['kl']:.2f}{'' if r['active'] else ' (inactive)'}, carries "
                  f"{r['top_factor']} (MI {r['top_mi_normalized']:.2f} of its entropy)", file=sys.stderr)
        print(f"MIG {out['mig']:.3f}  DCI D {out['dci']['disentanglement']:.3f}  FactorVAE "
              f"{out['factorvae_score']:.3f}  SAP {out['sap']:.3f}", file=sys.stderr)
    else:
        out = label_report(mu, None if data.test.y is None else data.test.y.numpy(), kl_per_dim=kl)
    out.update({"run_dir": args.run_dir, "data": data.name, "has_factors": data.has_factors})
    print(json.dumps(out))
    return 0
