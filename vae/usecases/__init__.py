"""What practitioners use a VAE for, built on the core (``vae.train``, ``vae.evaluate``, ``vae.pipeline``)
and never inside it. Each returns JSON-ready numbers on held-out data; no Streamlit and no printing;
long work takes ``callback`` (``vae.train`` events) and ``cancel``.

* :mod:`.semisup` - semi-supervised classification with few labels (M1+M2, Kingma et al. 2014).
* :mod:`.probe` - a logistic-regression probe on latent means against the same probe on raw pixels.
* :mod:`.compression` - bits per dimension of the VAE's bound beside PNG and gzip.
* :mod:`.rate_distortion` - one trained run per beta; each a (rate, distortion) point.
* :mod:`.augmentation` - a classifier on k labels with and without conditional-VAE samples.
* :mod:`.anomaly` - per-image -ELBO as an anomaly score; AUROC of a held-out class.
* :mod:`.doctor` - reads a run's history and flags what went wrong, with the change to try.
* :mod:`.plots` - npz / PNG exports and matplotlib figures of the results.
"""
from .anomaly import (
                      anomaly_scores,
                      complexity_bits,
                      complexity_corrected,
                      holdout_anomaly,
                      holdout_auroc,
                      top_anomalies,
                      without_class,
)
from .augmentation import augmentation
from .common import MEASURED_MODEL, MEASURED_TRAIN, balanced_subset
from .compression import compression
from .probe import DEFAULT_BUDGETS, linear_probe
from .rate_distortion import rate_distortion

__all__ = ["MEASURED_MODEL", "MEASURED_TRAIN", "DEFAULT_BUDGETS", "anomaly_scores", "augmentation", "balanced_subset",
           "complexity_bits", "complexity_corrected", "compression", "holdout_anomaly", "holdout_auroc",
           "linear_probe", "rate_distortion", "top_anomalies", "without_class"]
