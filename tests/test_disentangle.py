"""The disentanglement metrics on codes whose answer is known, and ``python -m vae disentangle`` end to end."""
import json

import numpy as np
import pytest
import torch

from vae import disentangle as D
from vae.cli import main
from vae.data import load_dataset
from vae.runs import load_run

SIZES = (3, 6, 10, 8)        # at most 20 values each, so 20 histogram bins can hold a factor whole
N = 1500
PERM = [2, 0, 3, 1]          # code dimension j copies factor PERM[j]


@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, k, N) for k in SIZES], axis=1)


def noise(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def copy_code(f):
    """Each dimension one factor (permuted), plus noise a tenth of a step."""
    return f[:, PERM] + 0.1 * noise((N, 4), 1)


def scores(z, f):
    dci = D.dci(z, f)
    return {"mig": D.mig(z, f)["mig"], "d": dci["disentanglement"], "c": dci["completeness"],
            "i": dci["informativeness"], "fvae": D.factorvae_score(z, f, num_train=2000, num_eval=1000)["score"],
            "sap": D.sap(z, f)["sap"]}


def test_a_code_that_copies_the_factors_scores_near_one(factors):
    s = scores(copy_code(factors), factors)
    assert min(s.values()) > 0.9, s
    rows = D.dimension_report(copy_code(factors), factors, ["a", "b", "c", "d"])
    assert [r["top_factor"] for r in rows] == [["a", "b", "c", "d"][k] for k in PERM]
    assert all(r["top_mi_normalized"] > 0.95 and r["active"] for r in rows)


def test_a_random_code_scores_near_zero_or_chance(factors):
    s = scores(noise((N, 4), 2), factors)
    assert s["mig"] < 0.05 and s["sap"] < 0.05 and s["d"] < 0.15 and s["c"] < 0.15, s
    # a majority vote over votes that carry nothing is right 1 / F of the time; accuracy is at chance
    assert 0.1 < s["fvae"] < 0.4 and s["i"] < 0.35, s


def test_two_factors_mixed_in_each_dimension_score_low_but_stay_informative(factors):
    f = (factors - factors.mean(0)) / factors.std(0)
    z = np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2] + f[:, 3], f[:, 2] - f[:, 3]], axis=1)
    s = scores(z + 0.01 * noise((N, 4), 3), factors)
    assert s["mig"] < 0.1 and s["sap"] < 0.1 and s["d"] < 0.65 and s["fvae"] < 0.75, s
    assert s["i"] > 0.9, "the information is all there, only rotated"


def test_a_factor_copied_into_two_dimensions(factors):
    """MIG and SAP score the gap between the two best dimensions, so a duplicated factor gets 0 there; DCI's D
    stays high (each dimension still serves one factor) while C drops (that factor is spread over two); the
    FactorVAE score does not see duplication (both dimensions vote for the same factor)."""
    z = np.concatenate([copy_code(factors), factors[:, [2]] + 0.1 * noise((N, 1), 4)], axis=1)
    m, s = D.mig(z, factors), D.sap(z, factors)
    assert m["per_factor"][2] < 0.1 and s["per_factor"][2] < 0.1
    assert min(np.delete(m["per_factor"], 2)) > 0.9 and min(np.delete(s["per_factor"], 2)) > 0.9
    dci, copy = D.dci(z, factors), D.dci(copy_code(factors), factors)
    assert dci["disentanglement"] > 0.9 and dci["completeness"] < copy["completeness"] - 0.05
    assert D.factorvae_score(z, factors, num_train=2000, num_eval=1000)["score"] > 0.9


def test_sap_as_locatello_et_al_ran_it_sits_well_below_one_even_for_a_perfect_code(factors):
    perfect = D.sap(copy_code(factors), factors, discrete=True)["sap"]
    random = D.sap(noise((N, 4), 5), factors, discrete=True)["sap"]
    assert 0.2 < perfect < 0.9 and random < 0.05 and perfect > random + 0.2


def test_mig_matches_disentanglement_libs_histogram_and_sklearns_mutual_information(factors):
    from sklearn.metrics import mutual_info_score
    z = copy_code(factors) + noise((N, 4), 6)
    ref = np.stack([np.digitize(c, np.histogram(c, 20)[1][:-1]) - 1 for c in z.T], axis=1)
    np.testing.assert_array_equal(D.discretize(z), ref)
    m = D.mutual_information(z, factors)
    expected = [[mutual_info_score(factors[:, k], ref[:, j]) for k in range(4)] for j in range(4)]
    np.testing.assert_allclose(m, expected, atol=1e-12)
    np.testing.assert_allclose(D.entropy(factors), [mutual_info_score(c, c) for c in factors.T], atol=1e-12)


def test_dci_from_a_known_importance_matrix():
    assert D.dci_from_importance(np.eye(4)) == pytest.approx((1.0, 1.0), abs=1e-6)
    assert D.dci_from_importance(np.ones((4, 4))) == pytest.approx((0.0, 0.0), abs=1e-6)
    # dims 0 and 1 both serve factor 0 (spread over 2 of 3 dims: 1 - log 2 / log 3), dim 2 serves factor 1
    d, c = D.dci_from_importance(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    assert d == pytest.approx(1.0, abs=1e-6)
    assert c == pytest.approx(2 / 3 * (1 - np.log(2) / np.log(3)) + 1 / 3, abs=1e-6)


def test_factorvae_score_prunes_collapsed_dimensions(factors):
    z = np.concatenate([copy_code(factors), 0.001 * noise((N, 2), 7)], axis=1)
    res = D.factorvae_score(z, factors, num_train=2000, num_eval=1000)
    assert res["active_dims"] == [0, 1, 2, 3] and res["score"] > 0.9
    assert D.factorvae_score(0.001 * noise((N, 3), 8), factors)["score"] == 0.0


def test_bad_inputs_are_refused_in_one_line(factors):
    z = copy_code(factors)
    for codes, f, word in [(z[:, 0], factors, "codes"), (np.where(z > 5, np.nan, z), factors, "NaN"),
                           (z, factors[:10], "one row per code"), (z, factors.astype(float), "integers"),
                           (z, np.zeros_like(factors), "one value")]:
        with pytest.raises(ValueError, match=word) as e:
            D.mig(codes, f)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="gbt"):
        D.dci(z, factors, model="lasso")


def test_label_report_for_data_without_factors():
    y = np.arange(3000) % 5
    z = np.stack([y + 0.1 * noise(3000, 9), noise(3000, 10)], axis=1)
    rep = D.label_report(z, y, kl_per_dim=[2.0, 0.1])
    first, second = rep["dims"]
    assert first["mi_labels_normalized"] > 0.95 and second["mi_labels_normalized"] < 0.05
    assert first["kl"] == 2.0 and rep["label_entropy"] == pytest.approx(np.log(5))
    unlabeled = D.label_report(z)
    assert "mi_labels" not in unlabeled["dims"][0] and unlabeled["active_units"] == 2


# ---------------------------------------------------------------- the command line, end to end


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "shapes"
    code = main(["train", "--data", "shapes32", "--max-train", "1000", "--max-test", "400", "--epochs", "2",
                 "--latent-dim", "4", "--hidden", "64", "--decoder-hidden", "64", "--batch-size", "200",
                 "--threads", "1", "--quiet", "--out", str(out)])
    assert code == 0
    return out


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured


def test_disentangle_prints_one_json_object_for_a_shapes_run(shapes_run, capsys):
    code, cap = run_cli(capsys, "disentangle", shapes_run, "--n", 300, "--threads", 1)
    assert code == 0, cap.err
    res = json.loads(cap.out.strip().splitlines()[-1])
    assert res["data"] == "shapes32" and res["has_factors"] and res["n"] == 300
    assert set(res["dci"]) >= {"disentanglement", "completeness", "informativeness"}
    for key in ("mig", "factorvae_score", "sap", "sap_discrete"):
        assert 0.0 <= res[key] <= 1.0, key
    names = ["shape", "scale", "orientation", "x position", "y position"]
    assert res["factors"] == names and len(res["dims"]) == 4
    for row in res["dims"]:
        assert set(row["mi"]) == set(names) and row["top_factor"] in names and row["kl"] >= 0
        assert row["top_mi"] == pytest.approx(max(row["mi"][n] for n in names if row["mi_normalized"][n]
                                                  == row["top_mi_normalized"]))
    # the same numbers from the library: the run's own test split, regenerated with its factors
    run = load_run(shapes_run)
    data = load_dataset("shapes32", max_train=1, max_test=300)
    with torch.no_grad():
        mu, _ = run.model.encode(data.test.x.float() / 255, None)
    again = D.report(mu.numpy(), data.test.factors.numpy(), data.factor_names, seed=0)
    assert again["mig"] == pytest.approx(res["mig"], abs=1e-6)
    assert again["dci"]["disentanglement"] == pytest.approx(res["dci"]["disentanglement"], abs=1e-6)


def test_disentangle_on_data_without_factors_reports_labels(tmp_path, capsys):
    out = tmp_path / "digits"
    code, cap = run_cli(capsys, "train", "--data", "digits8", "--epochs", 1, "--latent-dim", 3, "--hidden", 32,
                        "--decoder-hidden", 32, "--threads", 1, "--quiet", "--out", out)
    assert code == 0, cap.err
    code, cap = run_cli(capsys, "disentangle", out, "--threads", 1)
    assert code == 0, cap.err
    res = json.loads(cap.out.strip().splitlines()[-1])
    assert not res["has_factors"] and "mig" not in res and len(res["dims"]) == 3
    assert all(0 <= r["mi_labels_normalized"] <= 1 and r["kl"] >= 0 for r in res["dims"])


@pytest.mark.parametrize(("args", "word"), [(["--n", "0"], "--n"), (["--seed", "-1"], "--seed"),
                                            (["--dci-model", "lasso"], "invalid choice")])
def test_disentangle_refuses_bad_input_in_one_line(shapes_run, capsys, args, word):
    code, cap = run_cli(capsys, "disentangle", shapes_run, *args)
    lines = cap.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0], cap.err
    assert cap.out == ""


def test_disentangle_refuses_a_missing_run(tmp_path, capsys):
    code, cap = run_cli(capsys, "disentangle", tmp_path / "nothing")
    assert code == 2 and cap.err.startswith("error: ") and len(cap.err.strip().splitlines()) == 1
