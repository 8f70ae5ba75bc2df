"""What each latent dimension carries: disentanglement metrics as pure functions of codes and factors.

Every function takes numpy arrays and returns a JSON-ready dict:

* ``codes``: float ``[N, D]``, one representation per image (VAE Lab uses the posterior means, as
  disentanglement_lib does);
* ``factors``: int ``[N, F]``, the index of each ground-truth factor's value (``ImageData.factors``); any
  integer labels work, they are renumbered 0..K-1 per factor. Every factor must take at least two values.

The definitions follow disentanglement_lib (Locatello et al. 2019, "Challenging common assumptions in the
unsupervised learning of disentangled representations"; google-research/disentanglement_lib,
``evaluation/metrics/``), with the settings of its unsupervised study where it has them. Where VAE Lab departs
from it the function says so. Mutual information is in nats.

* :func:`mig` - Mutual Information Gap (Chen et al. 2018, beta-TCVAE): codes discretised into 20 equal-width
  bins per dimension, I(z_j; v_k) from the joint histogram, and per factor the gap between the two most
  informative dimensions divided by H(v_k); the mean over factors.
* :func:`dci` - Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018): a classifier per
  factor predicts it from all codes; its feature importances R [D, F] give D = importance-weighted
  1 - H_F(R_j.) and C = 1 - H_D(R_.k); I = the classifiers' held-out accuracy.
* :func:`factorvae_score` - the FactorVAE metric (Kim & Mnih 2018): fix one factor in a batch of 64, divide
  each dimension's variance by its variance over all points, vote for the factor at the dimension with the
  smallest; the majority-vote classifier's accuracy on held-out votes; dimensions whose standard deviation
  is under 0.05 are pruned first.
* :func:`sap` - Separated Attribute Predictability (Kumar et al. 2018): per factor, the difference between
  the two best single-dimension predictors.
* :func:`dimension_report` / :func:`label_report` - per dimension: KL, active or not, mutual information
  with each factor (or with the class labels, for data without factors) and the factor it carries most.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np

from .evaluate import ACTIVE_UNIT_THRESHOLD as ACTIVE_VARIANCE  # Burda et al. 2016: Var_x(E_q[z_d | x]) > 0.01

DEFAULT_BINS = 20               # disentanglement_lib's histogram discretiser (unsupervised study: 20 bins)
PRUNE_STD = 0.05                # FactorVAE score: prune dimensions with a smaller standard deviation
FACTORVAE_BATCH = 64
FACTORVAE_TRAIN, FACTORVAE_EVAL = 10_000, 5_000
FOREST_TREES = 30
DCI_MODELS = ("extra-trees", "gbt")


# ---------------------------------------------------------------------------------------------
# Inputs and information
# ---------------------------------------------------------------------------------------------


def check_inputs(codes: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise: codes -> float64 ``[N, D]``; factors -> int64 ``[N, F]`` renumbered 0..K-1 per column.

    Raises ValueError (one line) on a wrong shape, dtype, NaN/Inf, fewer than 2 points or a constant factor.
    """
    z = _check_codes(codes)
    f = np.asarray(factors)
    if f.ndim == 1:
        f = f[:, None]
    if f.ndim != 2 or f.shape[0] != z.shape[0] or f.shape[1] < 1 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"factors must be integers [N, F] with N = {z.shape[0]} (one row per code), "
                         f"got {f.dtype} {f.shape}")
    out = np.empty(f.shape, dtype=np.int64)
    for k in range(f.shape[1]):
        values, out[:, k] = np.unique(f[:, k], return_inverse=True)
        if len(values) < 2:
            raise ValueError(f"factor {k} takes one value in these {f.shape[0]} points; every factor must vary")
    return z, out


def _check_codes(codes: Any) -> np.ndarray:
    z = np.asarray(codes)
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1 or not np.issubdtype(z.dtype, np.number):
        raise ValueError(f"codes must be numbers [N, D] with N >= 2 and D >= 1, got {z.dtype} {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("codes contain NaN or infinite values")
    return z.astype(np.float64)


def discretize(codes: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Codes float ``[N, D]`` -> int64 ``[N, D]`` bin indices 0..bins-1: equal-width bins between each dimension's
    min and max (disentanglement_lib's ``_histogram_discretize``: ``np.digitize`` on ``np.histogram``'s edges)."""
    z = np.asarray(codes, dtype=np.float64)
    lo, hi = z.min(axis=0), z.max(axis=0)
    width = np.where(hi > lo, (hi - lo) / bins, 1.0)
    return np.clip(np.floor((z - lo) / width), 0, bins - 1).astype(np.int64)


def _mi(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of two label vectors 0..K-1 ``[N]`` from their joint histogram."""
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb) / a.shape[0]
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(max(0.0, (joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum()))


def entropy(labels: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each column of integer labels 0..K-1 ``[N, F]`` -> ``[F]``."""
    out = []
    for col in np.asarray(labels).T:
        p = np.bincount(col) / col.shape[0]
        p = p[p > 0]
        out.append(float(-(p * np.log(p)).sum()))
    return np.array(out)


def mutual_information(codes: np.ndarray, factors: np.ndarray, *, bins: int = DEFAULT_BINS) -> np.ndarray:
    """I(z_j; v_k) in nats for every dimension and factor, codes discretised by :func:`discretize` -> ``[D, F]``."""
    z, f = check_inputs(codes, factors)
    d = discretize(z, bins)
    return np.array([[_mi(d[:, j], f[:, k]) for k in range(f.shape[1])] for j in range(d.shape[1])])


def _gap(scores: np.ndarray) -> np.ndarray:
    """Per column of ``[D, F]``: the best minus the second best (the second is 0 for a single dimension)."""
    s = np.sort(scores, axis=0)[::-1]
    return s[0] - (s[1] if s.shape[0] > 1 else 0.0)


def _split(n: int, seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    return perm[n_test:], perm[:n_test]


# ---------------------------------------------------------------------------------------------
# The metrics
# ---------------------------------------------------------------------------------------------


def mig(codes: np.ndarray, factors: np.ndarray, *, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Mutual Information Gap (Chen et al. 2018), as disentanglement_lib's ``_compute_mig``.

    Returns:
        ``mig`` (mean over factors of (I_top1 - I_top2) / H(v_k), in [0, 1]), ``per_factor`` ``[F]``,
        ``mi`` ``[D][F]`` nats, ``mi_normalized`` ``[D][F]`` (I / H(v_k)), ``entropy`` ``[F]`` nats.
        With 20 bins a dimension carries at most log 20 nats, so a factor with more than 20 values cannot
        reach 1 (dSprites' 32 positions: at most log 20 / log 32 = 0.86), as in disentanglement_lib.
    """
    z, f = check_inputs(codes, factors)
    m = mutual_information(z, f, bins=bins)
    h = entropy(f)
    per = _gap(m) / h
    return {"mig": float(per.mean()), "per_factor": per.tolist(), "mi": m.tolist(),
            "mi_normalized": (m / h).tolist(), "entropy": h.tolist()}


def _classifier(model: str, seed: int, n_train: int):
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier
    if model == "gbt":
        return GradientBoostingClassifier(random_state=seed)
    if model == "extra-trees":
        return ExtraTreesClassifier(n_estimators=FOREST_TREES, max_features=None,
                                    min_samples_leaf=max(1, min(20, n_train // 200)), random_state=seed, n_jobs=1)
    raise ValueError(f"DCI model {model!r} is not accepted; accepted: {', '.join(DCI_MODELS)}")


def _one_minus_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """1 - H(p)/log(K) along ``axis`` (K = its length), with disentanglement_lib's 1e-11 smoothing; 1 when K = 1."""
    k = p.shape[axis]
    if k == 1:
        return np.ones(p.shape[1 - axis])
    q = p + 1e-11
    q = q / q.sum(axis=axis, keepdims=True)
    return 1.0 - (-(q * np.log(q)).sum(axis=axis)) / math.log(k)


def dci(codes: np.ndarray, factors: np.ndarray, *, model: Literal["extra-trees", "gbt"] = "extra-trees",
        seed: int = 0, test_fraction: float = 1 / 3) -> dict[str, Any]:
    """Disentanglement, Completeness and Informativeness (Eastwood & Williams 2018).

    One classifier per factor is trained on ``1 - test_fraction`` of the points to predict the factor's value
    from all D dimensions. ``model="gbt"`` is disentanglement_lib's ``GradientBoostingClassifier()``: it fits
    one tree per class and stage, which takes minutes on 10,000 codes with dSprites' 32- and 40-valued
    factors on a CPU. The default ``"extra-trees"`` is scikit-learn's ``ExtraTreesClassifier`` (extremely
    randomised trees, a close kin of the random forests Eastwood & Williams also used: 30 trees, every
    dimension considered at each split, at least ``min(20, n_train / 200)`` points per leaf), one tree for all
    classes, seconds instead; its impurity importances are the same kind as the boosted trees'.

    Returns:
        ``disentanglement``, ``completeness`` (disentanglement_lib's weighting), ``informativeness`` (mean
        held-out accuracy over factors), ``informativeness_train``, ``importance`` ``[D][F]``, ``model``.
    """
    z, f = check_inputs(codes, factors)
    train, test = _split(z.shape[0], seed, test_fraction)
    imp = np.zeros((z.shape[1], f.shape[1]))
    acc_train, acc_test = [], []
    for k in range(f.shape[1]):
        clf = _classifier(model, seed, len(train)).fit(z[train], f[train, k])
        imp[:, k] = np.abs(clf.feature_importances_)
        acc_train.append(float(np.mean(clf.predict(z[train]) == f[train, k])))
        acc_test.append(float(np.mean(clf.predict(z[test]) == f[test, k])))
    d, c = dci_from_importance(imp)
    return {"disentanglement": d, "completeness": c, "informativeness": float(np.mean(acc_test)),
            "informativeness_train": float(np.mean(acc_train)), "importance": imp.tolist(), "model": model}


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """Disentanglement and completeness of an importance matrix ``[D, F]`` (disentanglement_lib's definitions).

    D = sum_j rho_j (1 - H_F(P_j.)) with P_j. the row j normalised and rho_j its share of all importance;
    C = sum_k rho_k (1 - H_D(P_.k)) likewise over columns. 1 = each dimension serves one factor (D), each
    factor is served by one dimension (C); 0 = importance spread evenly.
    """
    imp = np.abs(np.asarray(importance, dtype=np.float64))
    if imp.ndim != 2 or not imp.size:
        raise ValueError(f"importance must be [D, F], got shape {imp.shape}")
    weights = imp if imp.sum() > 0 else np.ones_like(imp)
    d = float((_one_minus_entropy(imp, axis=1) * weights.sum(1) / weights.sum()).sum())
    c = float((_one_minus_entropy(imp, axis=0) * weights.sum(0) / weights.sum()).sum())
    return d, c


def _votes(z: np.ndarray, f: np.ndarray, n: int, rng: np.random.Generator, global_var: np.ndarray,
           active: np.ndarray, batch: int) -> np.ndarray:
    """FactorVAE votes ``[F, D]``: ``n`` batches, each with one factor fixed, vote (factor, least-varying dim)."""
    n_factors, dims = f.shape[1], np.flatnonzero(active)
    order = [np.argsort(f[:, k], kind="stable") for k in range(n_factors)]
    starts = [np.searchsorted(f[o, k], np.arange(f[:, k].max() + 2)) for k, o in enumerate(order)]
    votes = np.zeros((n_factors, z.shape[1]), dtype=np.int64)
    for lo in range(0, n, 1000):
        m = min(1000, n - lo)
        fixed = rng.integers(n_factors, size=m)
        anchor = rng.integers(z.shape[0], size=m)          # the fixed value is that of a random point
        rows = np.empty((m, batch), dtype=np.int64)
        for k in range(n_factors):
            sel = np.flatnonzero(fixed == k)
            value = f[anchor[sel], k]
            first, count = starts[k][value], starts[k][value + 1] - starts[k][value]
            pick = first[:, None] + np.floor(rng.random((len(sel), batch)) * count[:, None]).astype(np.int64)
            rows[sel] = order[k][pick]
        local = z[rows][:, :, dims].var(axis=1, ddof=1) / global_var[dims]       # [m, active dims]
        np.add.at(votes, (fixed, dims[np.argmin(local, axis=1)]), 1)
    return votes


def factorvae_score(codes: np.ndarray, factors: np.ndarray, *, seed: int = 0, batch_size: int = FACTORVAE_BATCH,
                    num_train: int = FACTORVAE_TRAIN, num_eval: int = FACTORVAE_EVAL,
                    prune_std: float = PRUNE_STD) -> dict[str, Any]:
    """The FactorVAE disentanglement metric (Kim & Mnih 2018), as disentanglement_lib's ``compute_factor_vae``.

    disentanglement_lib renders fresh images for each batch; here the batches are drawn (with replacement)
    from the given points that share the fixed factor's value, the training votes from one half of the points
    and the evaluation votes from the other.

    Returns:
        ``score`` (= ``eval_accuracy``), ``train_accuracy``, ``active_dims`` (indices kept after pruning),
        ``votes`` ``[F][D]`` (the training votes).
    """
    z, f = check_inputs(codes, factors)
    global_var = z.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_std
    if not active.any():
        return {"score": 0.0, "train_accuracy": 0.0, "eval_accuracy": 0.0, "active_dims": [],
                "votes": np.zeros((f.shape[1], z.shape[1]), dtype=int).tolist()}
    rng = np.random.default_rng(seed)
    half_a, half_b = _split(z.shape[0], seed, 0.5)
    train_votes = _votes(z[half_a], f[half_a], num_train, rng, global_var, active, batch_size)
    eval_votes = _votes(z[half_b], f[half_b], num_eval, rng, global_var, active, batch_size)
    classifier = np.argmax(train_votes, axis=0)                   # each dimension -> its majority factor
    cols = np.arange(z.shape[1])
    train_acc = float(train_votes[classifier, cols].sum() / max(1, train_votes.sum()))
    eval_acc = float(eval_votes[classifier, cols].sum() / max(1, eval_votes.sum()))
    return {"score": eval_acc, "train_accuracy": train_acc, "eval_accuracy": eval_acc,
            "active_dims": np.flatnonzero(active).tolist(), "votes": train_votes.tolist()}


def sap(codes: np.ndarray, factors: np.ndarray, *, discrete: bool = False, seed: int = 0,
        test_fraction: float = 1 / 3) -> dict[str, Any]:
    """Separated Attribute Predictability (Kumar et al. 2018), disentanglement_lib's ``compute_score_matrix``.

    ``discrete=False`` (the default): each (dimension, factor) scores the R^2 of a linear fit of the factor's
    index on that one dimension (disentanglement_lib's ``continuous_factors=True``; a code that copies the
    factors scores near 1). ``discrete=True``: the held-out accuracy of ``LinearSVC(C=0.01,
    class_weight="balanced")`` on that one dimension, as in Locatello et al. 2019's study; a one-dimensional
    one-against-the-rest linear classifier cannot pick out the middle values of a many-valued factor, so even
    a perfect code scores well below 1 there.

    Returns:
        ``sap`` (mean over factors of best minus second-best score), ``per_factor`` ``[F]``,
        ``scores`` ``[D][F]``, ``discrete``.
    """
    z, f = check_inputs(codes, factors)
    if discrete:
        scores = _svc_scores(z, f, seed, test_fraction)
    else:
        zc, fc = z - z.mean(0), f - f.mean(0)
        cov = zc.T @ fc / (z.shape[0] - 1)                                      # [D, F]
        var_z, var_f = zc.var(0, ddof=1), fc.var(0, ddof=1)
        ok = var_z > 1e-12
        scores = np.zeros_like(cov)
        scores[ok] = cov[ok] ** 2 / (var_z[ok, None] * var_f[None, :])
    per = _gap(scores)
    return {"sap": float(per.mean()), "per_factor": per.tolist(), "scores": scores.tolist(), "discrete": discrete}


def _svc_scores(z: np.ndarray, f: np.ndarray, seed: int, test_fraction: float) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC
    train, test = _split(z.shape[0], seed, test_fraction)
    scores = np.zeros((z.shape[1], f.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for j in range(z.shape[1]):
            for k in range(f.shape[1]):
                if len(np.unique(f[train, k])) < 2:
                    continue
                clf = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
                clf.fit(z[train, j:j + 1], f[train, k])
                scores[j, k] = np.mean(clf.predict(z[test, j:j + 1]) == f[test, k])
    return scores


# ---------------------------------------------------------------------------------------------
# Per dimension, and the whole report
# ---------------------------------------------------------------------------------------------


def _kl_list(kl_per_dim: Any, dims: int) -> list[float | None]:
    if kl_per_dim is None:
        return [None] * dims
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    if kl.shape[0] != dims:
        raise ValueError(f"kl_per_dim has {kl.shape[0]} values for {dims} latent dimensions")
    return [float(v) for v in kl]


def dimension_report(codes: np.ndarray, factors: np.ndarray, factor_names: list[str], *,
                     kl_per_dim: Any = None, bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """One dict per latent dimension: what it carries.

    Args:
        codes: float ``[N, D]``; factors: int ``[N, F]``; factor_names: ``[F]``.
        kl_per_dim: optional ``[D]`` mean KL of each dimension to the prior (nats), copied into the rows.

    Returns:
        ``[D]`` dicts: ``dim``, ``kl`` (or None), ``variance`` (of the codes over the points), ``active``
        (variance > 0.01, Burda et al. 2016), ``mi`` and ``mi_normalized`` ({factor name: I(z_j; v_k)} in nats
        and divided by H(v_k)), ``top_factor`` (the factor with the largest normalised MI), ``top_mi``
        (nats) and ``top_mi_normalized``.
    """
    z, f = check_inputs(codes, factors)
    if len(factor_names) != f.shape[1]:
        raise ValueError(f"{len(factor_names)} factor names for {f.shape[1]} factors")
    m = mutual_information(z, f, bins=bins)
    norm = m / entropy(f)
    kls, var = _kl_list(kl_per_dim, z.shape[1]), z.var(axis=0)
    rows = []
    for j in range(z.shape[1]):
        top = int(np.argmax(norm[j]))
        rows.append({"dim": j, "kl": kls[j], "variance": float(var[j]), "active": bool(var[j] > ACTIVE_VARIANCE),
                     "mi": dict(zip(factor_names, m[j].tolist())),
                     "mi_normalized": dict(zip(factor_names, norm[j].tolist())),
                     "top_factor": factor_names[top], "top_mi": float(m[j, top]),
                     "top_mi_normalized": float(norm[j, top])})
    return rows


def report(codes: np.ndarray, factors: np.ndarray, factor_names: list[str], *, kl_per_dim: Any = None,
           seed: int = 0, bins: int = DEFAULT_BINS,
           dci_model: Literal["extra-trees", "gbt"] = "extra-trees") -> dict[str, Any]:
    """Every metric and the per-dimension rows, as ``python -m vae disentangle`` prints them.

    Returns:
        ``mig``, ``dci`` {``disentanglement``, ``completeness``, ``informativeness``, ``model``},
        ``factorvae_score``, ``sap`` (R^2 version), ``sap_discrete`` (Locatello et al.'s LinearSVC version),
        ``per_factor`` {factor name: {``mig``, ``sap``}}, ``factors`` (names), ``n``, ``active_units``
        and ``dims`` (:func:`dimension_report`).
    """
    z, f = check_inputs(codes, factors)
    dims = dimension_report(z, f, factor_names, kl_per_dim=kl_per_dim, bins=bins)
    m = mig(z, f, bins=bins)
    d = dci(z, f, model=dci_model, seed=seed)
    s, s_disc = sap(z, f), sap(z, f, discrete=True, seed=seed)
    per_factor = {name: {"mig": m["per_factor"][k], "sap": s["per_factor"][k]} for k, name in enumerate(factor_names)}
    return {"mig": m["mig"],
            "dci": {key: d[key] for key in ("disentanglement", "completeness", "informativeness", "model")},
            "factorvae_score": factorvae_score(z, f, seed=seed)["score"], "sap": s["sap"],
            "sap_discrete": s_disc["sap"], "per_factor": per_factor, "factors": list(factor_names),
            "n": int(z.shape[0]), "active_units": sum(r["active"] for r in dims), "dims": dims}


def label_report(codes: np.ndarray, labels: np.ndarray | None = None, *, kl_per_dim: Any = None,
                 bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """What can be said without factors (MNIST, a user's folder): KL, activity and class information per dimension.

    Returns:
        ``n``, ``active_units`` and ``dims``: ``[D]`` dicts with ``dim``, ``kl``, ``variance``, ``active`` and,
        when ``labels`` ``[N]`` are given, ``mi_labels`` (I(z_j; y) in nats, codes discretised as for MIG) and
        ``mi_labels_normalized`` (divided by H(y)); plus ``label_entropy`` at the top level.
    """
    z, y = (_check_codes(codes), None) if labels is None else check_inputs(codes, labels)
    kls, var = _kl_list(kl_per_dim, z.shape[1]), z.var(axis=0)
    rows = [{"dim": j, "kl": kls[j], "variance": float(var[j]), "active": bool(var[j] > ACTIVE_VARIANCE)}
            for j in range(z.shape[1])]
    out: dict[str, Any] = {"n": int(z.shape[0]), "active_units": sum(r["active"] for r in rows), "dims": rows}
    if y is not None:
        h = float(entropy(y)[0])
        m = mutual_information(z, y, bins=bins)[:, 0]
        for r, v in zip(rows, m):
            r["mi_labels"], r["mi_labels_normalized"] = float(v), float(v / h)
        out["label_entropy"] = h
    return out
