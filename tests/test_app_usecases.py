"""AppTest: the Use cases and Doctor pages (run as scripts; app.py registers them in the navigation)."""
import json
import re
from pathlib import Path

import pytest
from app_support import ROOT, make_env, texts
from streamlit.testing.v1 import AppTest

from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import load_dataset
from vae.evaluate import evaluate
from vae.runs import save_run
from vae.train import fit


def page(name: str, run_path: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_pages" / name), default_timeout=90)
    if run_path:
        at.session_state["app.run"] = run_path
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def results(monkeypatch, tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    monkeypatch.setenv("VAE_LAB_RESULTS_DIR", str(d))
    return d


def collapsed_run(runs_dir: Path) -> str:
    data = load_dataset("mnist5k", max_train=500, max_test=100)
    cfg = RunConfig(model=ModelConfig(latent_dim=4, hidden=(64,)),
                    train=TrainConfig(epochs=2, batch_size=64, beta=60.0, threads=1),
                    data=DataConfig(name="mnist5k", max_train=500, max_test=100))
    r = fit(cfg, data)
    path = runs_dir / "collapsed"
    save_run(path, r.model, cfg, {"status": r.status, "message": r.message, "history": r.history,
                                  "final": evaluate(r.model, data.test)})
    return str(path)


def test_doctor_quiet_on_the_demo_run(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = page("doctor.py", str(ROOT / "assets" / "runs" / "mnist-16d"))
    assert texts(at.title) == ["Doctor"]
    assert any("No problems found" in s.value for s in at.success)
    assert not at.get("expander")


def test_doctor_flags_collapse_and_starts_the_fix(monkeypatch, tmp_path):
    runs_dir = make_env(monkeypatch, tmp_path)
    path = collapsed_run(runs_dir)
    at = page("doctor.py", path)
    titles = [e.proto.label for e in at.get("expander")]
    assert any(t.startswith("Posterior collapse: 0 of 4 latent dimensions active") for t in titles), titles
    assert len(at.get("plotly_chart")) == len(titles) >= 1
    assert any("--beta 1" in c.value and "--free-bits 0.5" in c.value for c in at.code)
    # the command writes into the app's runs folder, named by a placeholder the page explains; no server path
    assert all("--out RUNS_DIR/collapsed-" in c.value and str(runs_dir) not in c.value for c in at.code)
    assert any("RUNS_DIR" in c for c in texts(at.caption))
    said = " ".join(texts(at.markdown))
    assert "posterior_collapse" not in said and "(error)" not in said and "A problem." in said
    assert "None of the 4 latent dimensions is in use" in said
    at.button(key="doctor.start.posterior_collapse").click().run()
    assert not at.exception, at.exception
    assert any("Started the suggested run" in s.value for s in at.success), [e.value for e in at.error]
    from vae import jobs
    [(run_dir, status)] = jobs.list_jobs(runs_dir)          # the suggested run, queued or training
    assert status["state"] in jobs.ACTIVE
    queued = json.loads((run_dir / "config.json").read_text())
    assert queued["train"]["beta"] == 1.0 and queued["train"]["free_bits"] == 0.5


def test_use_cases_shows_results_and_commands(monkeypatch, tmp_path, results):
    make_env(monkeypatch, tmp_path)
    (results / "semisup_k100.json").write_text(json.dumps(
        {"labels": 100, "test_error": 0.0957, "baseline_test_error": 0.2397, "minutes": 15.9, "m1_minutes": 3.9}))
    rd_point = {"rate_nats_sd": 0.5, "distortion_nats_sd": 1.0, "neg_elbo": 110.0, "neg_elbo_sd": 0.25,
                "active_units": 20.0, "active_units_sd": 0.0, "seconds": 60.0, "seconds_sd": 2.0}
    (results / "usecase_seeds.json").write_text(json.dumps({
        "command": "python bench/usecase_seeds.py --seeds 0,1,2", "seeds": [0, 1, 2],
        "probe": {"latent_dim": 50, "rows": [{"labels": 100, "latent_accuracy": 0.71, "latent_accuracy_sd": 0.01,
                                              "pixel_accuracy": 0.72, "pixel_accuracy_sd": 0.02,
                                              "latent_ahead_in": 1, "of": 3}]},
        "compress": {"images": "binarised 0/1", "n_images": 1000, "iw_samples": 100, "raw_bits_per_dim": 1.0,
                     **{f"{k}_bits_per_dim": 0.5 for k in ("png_per_image", "png_tiled", "gzip", "neg_elbo", "iw")},
                     **{f"{k}_bits_per_dim_sd": 0.001 for k in ("png_per_image", "png_tiled", "gzip", "neg_elbo",
                                                                "iw")}},
        "rd": {"epochs": 1, "points": [{"beta": 0.5, "rate_nats": 40.0, "distortion_nats": 70.0, **rd_point},
                                       {"beta": 4.0, "rate_nats": 8.0, "distortion_nats": 130.0, **rd_point}]}}))
    cell = {"mean": 0.75, "sd": 0.02, "n": 5}
    (results / "augment_seeds.json").write_text(json.dumps({
        "command": "python bench/augment_seeds.py --seeds 0,1", "seeds": [0, 1], "regimes": [
            {"labels": 100, "ratio": 0.5, "accuracy_without": cell, "accuracy_with": {"mean": 0.74, "sd": 0.01},
             "gain": {"mean": -0.01, "sd": 0.005}, "helped_in": 1, "of": 5},
            {"labels": 100, "ratio": 1.0, "per_class": 10, "accuracy_without": cell,
             "accuracy_with": {"mean": 0.73, "sd": 0.012}, "gain": {"mean": -0.02, "sd": 0.006}, "helped_in": 0,
             "of": 5}]}))
    (results / "augment.json").write_text(json.dumps({"accuracy_without": 0.71, "accuracy_with": 0.74,
                                                      "gain": 0.03, "labels": 100}))
    (results / "semisup_k100_seeds.json").write_text(json.dumps(
        {"test_errors": [0.09, 0.13], "mean": 0.11, "sd": 0.02,
         "command": "/home/teacher/venv/bin/python3.11 -m vae semisup --label-seed 1 --out /srv/exp/j30/k100-ls1"}))
    cell = {"mean": 0.9, "sd": 0.01, "n": 2}
    (results / "anomaly_seeds.json").write_text(json.dumps({
        "command": "python bench/anomaly_seeds.py --data-dir ../shared/data --seeds 0,1", "seeds": [0, 1],
        "digits": [0, 1], "epochs": 2,
        "summary": {"auroc": {"mean_over_digits": {"mean": 0.5, "sd": 0.02, "n": 2},
                              "per_digit": {"0": cell, "1": {"mean": 0.1, "sd": 0.005, "n": 2}}},
                    "auroc_latent_class": {"mean_over_digits": {"mean": 0.85, "sd": 0.01, "n": 2},
                                           "per_digit": {"0": cell, "1": {"mean": 0.8, "sd": 0.03, "n": 2}}}}}))
    at = page("use_cases.py", str(ROOT / "assets" / "runs" / "mnist-16d"))
    assert texts(at.title) == ["Use cases"]
    assert any("over 2 labelled subsets (9.00 %, 13.00 %) the test error is **11.00 ± 2.00 %**" in t
               for t in texts(at.markdown))
    # the machine that measured a command named its interpreter and run folders: neither reaches the browser
    assert any("python -m vae semisup --label-seed 1 --out runs/k100-ls1" in c.value for c in at.code)
    seeds = next(d.value for d in at.dataframe if "latent class score" in d.value.columns)
    assert list(seeds["held out"]) == ["0", "1", "mean over the digits"]
    assert list(seeds["−ELBO"]) == ["0.900 ± 0.010", "0.100 ± 0.005", "0.500 ± 0.020"]
    assert list(seeds["latent class score"])[-1] == "0.850 ± 0.010"
    assert any("python bench/anomaly_seeds.py --data-dir DATA_DIR --seeds 0,1" in c.value for c in at.code)
    # one placeholder for the full data sets' folder, explained once, whatever each measured command named it
    code = "\n".join(c.value for c in at.code)
    assert "shared/data" not in code and "$DATA" not in code and " DATA " not in code
    assert not re.search(r"(^|[\s=])/", code, re.M), code
    assert all("--data-dir DATA_DIR" in line for line in code.splitlines()
               if re.search(r"--data (mnist|fashion-mnist|kmnist)\b", line)), code
    assert sum("DATA_DIR" in c for c in texts(at.caption)) == 1
    table = at.dataframe[0].value
    assert list(table["test error %"]) == [9.57] and list(table["pixel baseline error %"]) == [23.97]
    # probe, compression and rate-distortion: each figure as mean ± sd over the seeds, with error bars
    frames = [d.value for d in at.dataframe]
    probe = next(v for v in frames if "latent ahead in" in v.columns)
    assert list(probe["latent accuracy"]) == ["0.7100 ± 0.0100"] and list(probe["latent ahead in"]) == ["1 of 3 seeds"]
    comp = next(v for v in frames if "codec" in v.columns)
    assert list(comp["bits per dimension"]) == ["1.0000"] + ["0.5000 ± 0.0010"] * 5
    assert list(comp["codec"])[-1] == "VAE importance-weighted, K=100"
    rd = next(v for v in frames if "rate: KL, nats" in v.columns)
    assert list(rd["rate: KL, nats"]) == ["40.00 ± 0.50", "8.00 ± 0.50"]
    charts = [json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart")]
    assert [t["error_y"]["array"] for t in charts[0]] == [[0.01], [0.02]]      # the probe's two lines
    assert charts[1][0]["error_x"]["array"] == [0.5, 0.5]                        # rate-distortion
    assert any("python bench/usecase_seeds.py --seeds 0,1,2" in c.value for c in at.code)
    # augmentation: the metrics over seeds (100 labels, as many generated as real), not the one-seed run's 74 %
    metrics = {m.label: (m.value, m.proto.delta) for m in at.metric}
    assert metrics["accuracy without"][0] == "75.00 ± 2.00 %"
    assert metrics["accuracy with generated"] == ("73.00 ± 1.20 %", "-2.00 ± 0.60 points")
    assert "74.00 %" not in [m.value for m in at.metric]
    aug = next(v for v in frames if "seeds it helped" in v.columns)
    assert list(aug["gain, points"]) == ["-1.00 ± 0.50", "-2.00 ± 0.60"]
    assert list(aug["accuracy without, %"]) == ["75.00 ± 2.00"] * 2
    # live anomaly scores of the active run: 16 images, highest score first
    caps = [c for img in at.get("image") for c in img.captions if c.startswith("#")]
    scores = [float(c.split("·")[1].split()[0]) for c in caps]
    assert len(scores) == 16 and scores == sorted(scores, reverse=True)
    assert all(c.rsplit("·", 1)[1].strip() in {f"label {d}" for d in range(10)} for c in caps), caps
    at.select_slider(key="usecases.top_n").set_value(8).run()
    assert len([c for img in at.get("image") for c in img.captions if c.startswith("#")]) == 8


def test_a_label_is_named_as_its_data_set_names_it():
    from ui.catalogue import class_name
    assert class_name(["square", "ellipse", "heart"], 2) == "heart"          # shapes32's anomalies: "label heart"
    assert class_name(None, 3) == "3" and class_name(["a"], 5) == "5"


def test_commands_shown_in_a_page_carry_no_machine_path():
    """A command as the Use cases and Doctor pages show it: placeholders and run names, never a server's path."""
    from ui.usecases_view import command_text
    assert command_text("/srv/venv/bin/python3.11 -m vae semisup --data mnist --data-dir /srv/data --out "
                        "/srv/exp/k100-ls0 --m1-from=/srv/exp/m1/") == \
        "python -m vae semisup --data mnist --data-dir DATA_DIR --out runs/k100-ls0 --m1-from=runs/m1"
    # a run trained on an upload (the Doctor's suggested run names its data set as the run recorded it)
    assert command_text("python -m vae train --data /srv/runs/.uploads/0123abcd/digits.zip --out RUNS_DIR/r-fix") == \
        "python -m vae train --data RUNS_DIR/.uploads/0123abcd/digits.zip --out RUNS_DIR/r-fix"
    assert command_text("python -m vae train --data /home/t/faces.npz") == "python -m vae train --data …/faces.npz"
    kept = "python bench/x.py --url http://localhost:8501/a --ratio 1/2 --out runs/x"
    assert command_text(kept) == kept
