"""AppTest: the Dimensions page on a factor run and on MNIST (what it says each dimension carries, against the core's
own numbers), two runs side by side, the server's strips when the browser cannot decode; the Train page's
objective selector (invalid TC weights refused, the objective's terms charted from the job's own events); and the
two-run guided experiment, whose runs train one after the other."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from app_support import ROOT, make_env, open_app, pick_run, plotly_values, poll, texts

from ui import catalogue, scenarios, strips, train_form, train_panel
from ui import dimensions_view as dv
from vae import disentangle, latent
from vae.data import load_dataset
from vae.runs import load_run

FACTOR_RUN, FACTOR_RUN_PLAIN = "shapes32-tcvae-10d", "shapes32-vae-10d"


def strip_data(at, key="dims.strips.0") -> dict:
    [el] = [e for e in at.main if getattr(e, "key", None) == key]
    assert el.proto.component_name == "vae_lab_strips"
    return json.loads(el.proto.json)


def heat(at, i=0) -> dict:
    [chart] = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"dims.heat.{i}")]
    return json.loads(chart.proto.spec)["data"][0]


def demo_run(name):
    return next(e for e in catalogue.catalogue() if e.name == name)


def core_factor_report(name: str):
    """What the core says of the demo run's first dv.MAX_POINTS test images, independently of the page."""
    run = load_run(demo_run(name).path)
    d = run.config.data
    split = load_dataset(d.name, max_train=1, max_test=dv.MAX_POINTS)
    mu = latent.encode(run.model, split.test)["mu"]
    kl = run.metrics.kl_per_dim(run.config.model.latent_dim)
    rows = disentangle.dimension_report(mu, split.test.factors.numpy(), split.factor_names, kl_per_dim=kl)
    return run, rows, disentangle.mig(mu, split.test.factors.numpy())["mig"], split.factor_names


def test_factor_run_names_each_dimension_by_its_factor(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = pick_run(open_app("app_pages/dimensions.py"), FACTOR_RUN)
    run, rows, mig, names = core_factor_report(FACTOR_RUN)
    order = sorted(range(len(rows)), key=lambda j: -rows[j]["kl"])
    data = strip_data(at)
    assert [r["dim"] for r in data["rows"]] == order, "one row per dimension, largest KL first"
    assert data["values"] == pytest.approx(np.linspace(-3, 3, 9).tolist()) and data["z0"] == [0.0] * 10
    for r in data["rows"]:
        core = rows[r["dim"]]
        assert f"KL {core['kl']:.2f} nats" in r["detail"]
        top, share = core["top_factor"], core["top_mi_normalized"]
        if core["active"] and core["kl"] >= 0.05 and share < dv.NOTHING:
            assert "no factor" in r["detail"]
        elif core["active"] and core["kl"] >= 0.05:        # "x position, MI 0.81" or "mixes x position (MI 0.41) ..."
            assert f"{top}, MI {share:.2f}" in r["detail"] or f"mixes {top} (MI {share:.2f})" in r["detail"]
        else:
            assert f" · {dv.INACTIVE}: " in r["detail"] and r["muted"]
    named = [r for r in data["rows"] if ", MI " in r["detail"]]
    assert named, "a beta-TCVAE on shapes32 names at least one dimension by one factor"
    # the heat map: dimensions (largest KL first) x factors, the core's MI as a share of each factor's entropy
    trace = heat(at)
    assert trace["x"] == names and trace["y"][0].strip("()") == f"z{order[0]}"
    z = np.asarray([plotly_values(row) for row in trace["z"]]) if isinstance(trace["z"], list) else \
        plotly_values(trace["z"]).reshape(len(order), len(names))
    want = np.array([[rows[j]["mi_normalized"][f] for f in names] for j in order])
    assert np.allclose(z, want, atol=1e-9)
    assert any(f"MIG {mig:.2f}" in c for c in texts(at.caption))


def test_two_runs_side_by_side_and_the_link(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = pick_run(open_app("app_pages/dimensions.py"), FACTOR_RUN)
    at.selectbox(key="dims.other").set_value(demo_run(FACTOR_RUN_PLAIN).path).run()
    assert not at.exception, at.exception
    assert [m for m in texts(at.markdown) if m.startswith("**shapes32-")] == [
        f"**{FACTOR_RUN}** · β-TCVAE (TC weight 20)", f"**{FACTOR_RUN_PLAIN}** · VAE (β = 1)"]
    left, right = strip_data(at, "dims.strips.0"), strip_data(at, "dims.strips.1")
    assert left["spec"]["id"] != right["spec"]["id"] and len(left["rows"]) == len(right["rows"]) == 10
    assert heat(at, 0)["x"] == heat(at, 1)["x"]
    assert at.query_params["vs"] == FACTOR_RUN_PLAIN
    # the active run is never offered beside itself
    assert demo_run(FACTOR_RUN).path not in at.selectbox(key="dims.other").options


def test_mnist_run_says_what_each_dimension_tells_of_the_class(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = pick_run(open_app("app_pages/dimensions.py"), "mnist-16d")
    run = load_run(demo_run("mnist-16d").path)
    test = load_dataset("mnist5k").test
    mu = latent.encode(run.model, test)["mu"][:dv.MAX_POINTS]
    kl = run.metrics.kl_per_dim(16)
    rep = disentangle.label_report(mu, test.y.numpy()[:dv.MAX_POINTS], kl_per_dim=kl)
    trace = heat(at)
    assert trace["x"] == ["class"]
    order = sorted(range(16), key=lambda j: -kl[j])
    z = plotly_values(trace["z"]).reshape(16, 1)[:, 0] if isinstance(trace["z"], dict) else \
        np.asarray(trace["z"], float)[:, 0]
    assert np.allclose(z, [rep["dims"][j]["mi_labels_normalized"] for j in order], atol=1e-9)
    details = {r["dim"]: r["detail"] for r in strip_data(at)["rows"]}
    top = order[0]
    assert f"class, MI {rep['dims'][top]['mi_labels_normalized']:.2f}" in details[top]
    assert not any("MIG" in c for c in texts(at.caption)), "no MIG without factors"


def test_conditional_run_strips_follow_the_class(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = pick_run(open_app("app_pages/dimensions.py"), "mnist-cvae-2d")
    assert strip_data(at)["label"] == 0
    at.selectbox(key="dims.label").set_value(7).run()
    assert strip_data(at)["label"] == 7


def test_server_strips_when_the_decoder_cannot_go_to_the_browser(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    monkeypatch.setattr(strips, "spec_of", lambda model, key: (None, "a layer the browser lacks"))
    at = pick_run(open_app("app_pages/dimensions.py"), FACTOR_RUN)
    assert not [e for e in at.main if getattr(e, "key", None) == "dims.strips.0"]
    assert any("decoded on the server (the decoder cannot run in the browser: a layer the browser lacks)" in c
               for c in texts(at.caption))
    caps = [c for img in at.get("image") for c in img.captions]
    assert len(caps) == 10 and caps[0].startswith("z") and "KL" in caps[0]


# ---------------------------------------------------------------------------------------------- the Train page


def test_objective_selector_refuses_wrong_tc_weights(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/train.py")
    names = at.selectbox(key="train.data").options
    assert "shapes32" in names and "colour-shapes" in names and "shapes" not in names
    assert not [t for t in at.text_input if t.key == "train.tc_weight"], "no TC weight for the ELBO"
    at.selectbox(key="train.objective").set_value("btcvae").run()
    box = at.text_input(key="train.tc_weight")
    assert box.value == "6" and "0 to 1000" in texts(at.caption)
    start = at.button(key="train.start")
    assert not start.disabled
    for bad in ("-1", "abc", "1001", "", "inf"):
        at.text_input(key="train.tc_weight").input(bad).run()
        assert at.button(key="train.start").disabled, bad
        [err] = [e.value for e in at.error]
        assert "TC weight" in err and "(0 to 1000)" in err, err
    at.text_input(key="train.tc_weight").input("10").run()
    assert not at.error and not at.button(key="train.start").disabled
    # settings that clash with the objective: the core's one line, and no Start
    at.text_input(key="train.free_bits").input("0.5").run()
    assert at.button(key="train.start").disabled and "free_bits" in at.error[0].value
    at.text_input(key="train.free_bits").input("0").run()
    at.selectbox(key="train.objective").set_value("iwae").run()
    at.text_input(key="train.beta").input("2").run()
    assert at.button(key="train.start").disabled and "IWAE objective" in at.error[0].value


def test_full_shapes_is_refused_with_its_reason(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    at = open_app()
    at.session_state["train.data"] = "shapes"
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert any("737,280 images" in e.value and "shapes32" in e.value for e in at.error)
    assert at.selectbox(key="train.data").value != "shapes"


def test_a_full_shapes_run_shows_a_part_of_its_test_images_and_the_whole_set_is_never_loaded(tmp_path):
    from ui import datasets
    from vae.data import DataError
    run = load_run(ROOT / "assets" / "runs" / FACTOR_RUN)
    run = dataclasses.replace(run, config=dataclasses.replace(
        run.config, data=dataclasses.replace(run.config.data, name="shapes", image_size=32)))
    test, key, note = datasets.for_run(run)        # a shapes run uploaded or trained from the command line
    assert note is None and key.max_train == 1 and len(test) == datasets.PART
    for whole in (datasets.DataKey("shapes"), datasets.DataKey("shapes", max_train=100_000, max_test=100)):
        with pytest.raises(DataError, match="737,280 images"):
            datasets.load(whole)


def _start_small(at, objective: str, tc_weight: str) -> None:
    at.button(key="train.quick").click().run()
    at.selectbox(key="train.data").set_value("shapes32").run()
    at.selectbox(key="train.objective").set_value(objective).run()
    for key, value in (("train.tc_weight", tc_weight), ("train.latent_dim", "4"), ("train.epochs", "2"),
                       ("train.time_budget", "0"), ("train.max_train", "1024"), ("train.max_test", "256")):
        at.text_input(key=key).input(value).run()
    at.selectbox(key="train.batch_size").set_value(128).run()
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception


@pytest.mark.parametrize("objective, terms", [("btcvae", ["mi", "tc", "dwkl"]), ("factorvae", ["tc", "disc_loss"])])
def test_the_objectives_terms_are_charted_from_the_jobs_steps(monkeypatch, tmp_path, objective, terms):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app("app_pages/train.py")
    _start_small(at, objective, "7")

    def finished(a):
        return any("Training finished" in s.value for s in a.success)
    poll(at, finished, timeout=180)
    [run] = [p for p in runs.iterdir() if (p / "metrics.json").is_file()]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["objective"] == objective and cfg["train"]["tc_weight"] == 7
    steps = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    steps = [e for e in steps if e.get("type") == "step"]
    [chart] = [c for c in at.get("plotly_chart") if any(t in c.proto.spec for t in ("Total correlation",))]
    traces = json.loads(chart.proto.spec)["data"]
    each_step = [t for t in traces if t["name"].endswith("(each step)")]
    assert [t["name"] for t in each_step] == [f"{t} (each step)" for t in terms]
    for term, trace in zip(terms, each_step):
        assert np.allclose(plotly_values(trace["y"]), [e[term] for e in steps], rtol=1e-6), term
    assert any(f"The {train_form.OBJECTIVE_NAMES[objective]} objective's own terms" in m for m in texts(at.markdown))


# ------------------------------------------------------------------------------- the two-run guided experiment


def test_make_the_dimensions_mean_something_runs_one_after_the_other(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    small = {"train.time_budget": 3, "train.epochs": 2, "train.max_train": 1024, "train.max_test": 256}
    sc = scenarios.BY_KEY["dims"]
    monkeypatch.setitem(scenarios.BY_KEY, "dims", dataclasses.replace(
        sc, settings={**sc.settings, **small}, then={**sc.then, **small}))
    monkeypatch.setattr(train_panel, "QUICK_SECONDS", 3)
    at = open_app()
    at.button(key="home.scenario_button.dims").click().run()
    assert not at.exception, at.exception
    assert texts(at.title) == ["Train"] and at.selectbox(key="train.data").value == "shapes32"
    assert any("Make the dimensions mean something** (run 1 of 2)" in i.value for i in at.info)

    def both(a):
        return any("both runs done" in i.value for i in a.info)
    poll(at, both, timeout=300)
    done = sorted((p for p in runs.iterdir() if (p / "metrics.json").is_file()),
                  key=lambda p: json.loads((p / "job.json").read_text())["created"])
    assert [json.loads((p / "config.json").read_text())["train"]["objective"] for p in done] == ["elbo", "btcvae"]
    first, second = (json.loads((p / "job.json").read_text()) for p in done)
    assert second["created"] >= first["ended"], "the second run was queued only after the first ended"
    heats = [c for c in at.get("plotly_chart") if ".heat." in c.proto.id]
    assert len(heats) == 2
    assert at.session_state["dims.other"].endswith(done[0].name)
    # in the Dimensions page's order: the active run (the β-TCVAE, trained last) first, the VAE beside it
    named = [m.value for m in at.markdown if m.value.startswith("**") and "**" in m.value[2:] and " · " in m.value]
    assert [n.split("**")[1] for n in named[-2:]] == [done[1].name, done[0].name], named
