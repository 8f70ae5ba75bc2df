"""AppTest: the Compare page puts runs side by side and replays a run from its per-epoch snapshots."""
from __future__ import annotations

import json

import numpy as np
from app_support import ROOT, make_env, open_app, pick_run, plotly_values, texts

from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.data import load_dataset
from vae.pipeline import train_run

DEMOS = ROOT / "assets" / "runs"


def _trained(runs_dir, epochs: int = 3):
    """A small 2-D run written by the pipeline (so it keeps a snapshot per epoch), as the app's jobs write it."""
    cfg = RunConfig(model=ModelConfig(latent_dim=2, hidden=(64,)),
                    train=TrainConfig(epochs=epochs, batch_size=100, threads=1),
                    data=DataConfig(name="mnist5k", max_train=600, max_test=100))
    out = runs_dir / "small-2d"
    train_run(cfg, load_dataset("mnist5k", max_train=600, max_test=100), out)
    return out


def test_two_demo_runs_side_by_side(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/compare.py")
    assert texts(at.title) == ["Compare runs"] and not at.exception
    chosen = at.multiselect(key="compare.runs").value
    assert [p.split("/")[-1] for p in chosen] == ["mnist-2d", "mnist-16d"]
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t["name"] for t in curves["data"]}
    assert names == {"mnist-2d", "mnist-16d"} and len(curves["data"]) == 6     # 3 panels x 2 runs
    table = at.dataframe[0].value                      # a column per run, a row per figure
    assert list(table.columns) == ["mnist-2d", "mnist-16d"]
    final = json.loads((DEMOS / "mnist-16d" / "metrics.json").read_text())["final"]
    assert float(table.loc["−ELBO (test, nats)", "mnist-16d"]) == round(final["neg_elbo"], 2)
    assert list(table.index[:4]) == ["data", "model", "objective", "β"] and table.loc["seconds"].notna().all()
    caps = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Top row: the test inputs.") and "mnist-2d, mnist-16d" in c for c in caps)
    assert len(at.get("plotly_chart")) == 3            # the curves and one map per run
    assert any("No run here has kept per-epoch snapshots" in i.value for i in at.info)


def test_a_pipeline_run_replays_epoch_by_epoch(monkeypatch, tmp_path):
    runs_dir = make_env(monkeypatch, tmp_path)
    out = _trained(runs_dir)
    at = open_app("app_pages/compare.py")
    paths = [str(DEMOS / "mnist-2d"), str(out)]
    at.multiselect(key="compare.runs").set_value(paths).run()
    assert not at.exception
    assert at.selectbox(key="compare.replay_run").value == str(out)
    slider = at.select_slider(key="compare.replay_epoch")
    assert list(slider.options) == ["1", "2", "3"] and slider.value == 3

    def replay_map():
        spec = json.loads(next(c for c in at.get("plotly_chart") if c.key == "compare.replay_map").proto.spec)
        return [p for t in spec["data"] if t.get("mode") == "markers" for p in plotly_values(t["x"])]

    last = replay_map()
    slider.set_value(1).run()
    assert not at.exception
    first = replay_map()
    assert len(first) == len(last) == 100 and not np.allclose(first, last), "epoch 1 and 3 differ on the map"
    assert any("after epoch 1 of 3" in c for c in texts(at.caption))


def test_a_run_is_named_by_its_objective_in_the_lists_and_the_table(monkeypatch, tmp_path):
    """Two 10-D runs on the same data differ by their objective: the picker's labels and Compare's table say which
    (both were "10-D VAE" and β = 1 before, a new user could not tell the β-TCVAE from the VAE)."""
    from ui.catalogue import RunSummary, kind_name
    assert kind_name(RunSummary(ok=True)) == "VAE"
    assert kind_name(RunSummary(ok=True, beta=4.0), weights=True) == "β-VAE (β = 4)"
    assert kind_name(RunSummary(ok=True, objective="btcvae", tc_weight=20.0), weights=True) == "β-TCVAE (TC weight 20)"
    assert kind_name(RunSummary(ok=True, conditional=True)) == "CVAE"
    assert kind_name(RunSummary(ok=True, objective="iwae", conditional=True)) == "conditional IWAE"
    assert kind_name(RunSummary(ok=True, beta=4.0, conditional=True), weights=True) == "conditional β-VAE (β = 4)"
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/compare.py")
    tc, vae = (str(DEMOS / n) for n in ("shapes32-tcvae-10d", "shapes32-vae-10d"))
    at.multiselect(key="compare.runs").set_value([tc, vae]).run()
    labels = at.multiselect(key="compare.runs").options
    assert any(o.startswith("shapes32-tcvae-10d · 10-D β-TCVAE") for o in labels), labels
    assert any(o.startswith("shapes32-vae-10d · 10-D VAE") for o in labels), labels
    table = at.dataframe[0].value
    weight = json.loads((DEMOS / "shapes32-tcvae-10d" / "config.json").read_text())["train"]["tc_weight"]
    assert list(table.loc["objective"]) == [f"β-TCVAE (TC weight {weight:g})", "VAE"]


def test_the_sidebar_names_an_iwae_run_by_its_objective(monkeypatch, tmp_path):
    """The sidebar's caption under the picker says IWAE as it says β-TCVAE (it said only "2-D latent · MLP")."""
    import shutil
    runs = make_env(monkeypatch, tmp_path)
    run = runs / "iwae-2d"
    shutil.copytree(DEMOS / "mnist-2d", run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"].update(objective="iwae", iw_k=5, warmup_epochs=0)
    (run / "config.json").write_text(json.dumps(cfg))
    at = pick_run(open_app(), "iwae-2d")
    said = texts(at.sidebar.caption)
    assert any(c.startswith("2-D latent · IWAE · MLP") for c in said), said


def test_the_run_put_beside_the_active_one_by_default_is_on_the_same_data(monkeypatch, tmp_path):
    """A shapes32 run active: Compare opens it beside the other shapes32 run, not the MNIST demo listed first."""
    make_env(monkeypatch, tmp_path)
    at = open_app()
    at.session_state["app.run"] = str(DEMOS / "shapes32-tcvae-10d")
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    assert [p.split("/")[-1] for p in at.multiselect(key="compare.runs").value] == ["shapes32-tcvae-10d",
                                                                                   "shapes32-vae-10d"]
