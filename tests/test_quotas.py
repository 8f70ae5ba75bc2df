"""A class's quotas and owners through the app (AppTest) and the checks behind them: epochs and time budget of an
app run (invalid values typed), disk per person and the free-space floor (Start and uploads refused with one line),
one job per person across tabs, read-only watching, deleting your own runs, damaged runs listed, and teacher mode."""
import json
import time

import pytest
from app_support import make_env, open_app, poll, texts
from test_app_train import saved_runs, tiny_npz

from ui import owners, quotas, settings
from vae.config import ConfigError, ModelConfig, RunConfig, TrainConfig

PAGE = "app_pages/train.py"
LONG = {"train.epochs": "500", "train.hidden": "32", "train.max_train": "200", "train.max_test": "20"}


def _fill(at, values: dict) -> None:
    for key, text in values.items():
        at.text_input(key=key).set_value(text)
    at.run()


def _start_long(at) -> None:
    _fill(at, LONG)
    at.button(key="train.start").click().run()
    assert not at.exception and not at.error, texts(at.error)


def _stop_button(at):
    return [b for b in at.button if b.key == "train.stop"]


def test_settings_read_bad_values_as_their_defaults_and_clamp_negatives(monkeypatch):
    for name, value, read, expect in (
            ("VAE_LAB_JOBS_PER_PERSON", "abc", settings.jobs_per_person, 1),
            ("VAE_LAB_JOBS_PER_PERSON", "0", settings.jobs_per_person, 1),          # at least one
            ("VAE_LAB_MAX_EPOCHS", "-5", settings.max_epochs, 0),                   # 0 = off
            ("VAE_LAB_MAX_EPOCHS", "1e3", settings.max_epochs, 200),
            ("VAE_LAB_MAX_TIME_BUDGET_S", "nan?", settings.max_time_budget, 300.0),
            ("VAE_LAB_DISK_PER_PERSON_MB", "1.5", settings.disk_per_person, int(1.5 * 2**20)),
            ("VAE_LAB_SNAPSHOTS_KEPT", "", settings.snapshots_kept, 20),
            ("VAE_LAB_MIN_FREE_MB", "-1", settings.min_free_bytes, 0)):
        monkeypatch.setenv(name, value)
        assert read() == expect, (name, value)
    monkeypatch.delenv("VAE_LAB_TEACHER_PASSWORD", raising=False)
    assert settings.teacher_password() == ""


def test_a_job_started_in_the_app_is_bounded_in_epochs_and_time(monkeypatch):
    monkeypatch.setenv("VAE_LAB_MAX_EPOCHS", "50")
    monkeypatch.setenv("VAE_LAB_MAX_TIME_BUDGET_S", "120")
    cfg = quotas.bound(RunConfig(train=TrainConfig(epochs=50, time_budget=0)))
    assert cfg.train.time_budget == 120 and cfg.train.epochs == 50          # budget off -> the limit
    assert quotas.bound(RunConfig(train=TrainConfig(time_budget=20))).train.time_budget == 20
    with pytest.raises(quotas.QuotaError, match=r"51 epochs is over this server's limit of 50 .*VAE_LAB_MAX_EPOCHS"):
        quotas.bound(RunConfig(train=TrainConfig(epochs=51)))
    with pytest.raises(quotas.QuotaError, match="time budget of 121 s is over this server's limit of 120 s"):
        quotas.bound(RunConfig(train=TrainConfig(time_budget=121)))
    monkeypatch.setenv("VAE_LAB_MAX_EPOCHS", "0")
    monkeypatch.setenv("VAE_LAB_MAX_TIME_BUDGET_S", "0")
    assert quotas.bound(RunConfig(train=TrainConfig(epochs=5000))).train.time_budget == 0


def test_a_job_started_in_the_app_is_a_vae_within_the_servers_model_budget(monkeypatch):
    monkeypatch.setenv("VAE_LAB_MAX_LAYERS", "3")
    big = RunConfig(model=ModelConfig(hidden=[64, 64, 64, 64]))
    with pytest.raises(ConfigError, match="4 layers, over the budget of 3.*VAE_LAB_MAX_LAYERS"):
        quotas.bound(big)
    monkeypatch.setenv("VAE_LAB_MAX_LAYERS", "8")
    quotas.bound(big)
    with pytest.raises(quotas.QuotaError, match="a semisup run does not train in the app"):
        quotas.bound(RunConfig(kind="semisup"))


def test_the_form_refuses_epochs_and_time_budgets_over_the_servers_limit(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_MAX_EPOCHS=40, VAE_LAB_MAX_TIME_BUDGET_S=90)
    at = open_app(PAGE)
    for epochs, budget in (("41", "91"), ("1000", "604800"), ("-1", "abc"), ("40.5", "inf")):
        _fill(at, {"train.epochs": epochs, "train.time_budget": budget})
        assert at.button(key="train.start").proto.disabled       # nothing can start
        [line] = texts(at.error)
        # a number out of range is "not N"; what is not a number (or not whole) is quoted as typed
        said = {e: f"; got {e!r}" for e in ("40.5", "abc", "inf")}
        assert f"Epochs takes a whole number (1 to 40: this server's limit){said.get(epochs, f', not {epochs}')}" \
            in line, line
        limit = "0 to 90 s, this server's limit; 0 means 90 s here"
        assert f"takes a number ({limit}){said.get(budget, f', not {budget}')}" in line, line
    _fill(at, {"train.epochs": "40", "train.time_budget": "90"})
    assert not at.error and not at.button(key="train.start").proto.disabled
    captions = " ".join(c.value for c in at.caption)
    assert "1 to 40: this server's limit" in captions and "0 means 90 s here" in captions
    assert not saved_runs(runs) and not (runs.is_dir() and [p for p in runs.iterdir() if p.name[0] != "."])


def test_a_budget_left_off_becomes_the_limit_and_the_free_space_floor_refuses_starts_and_uploads(monkeypatch,
                                                                                              tmp_path):
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_MAX_EPOCHS=0, VAE_LAB_MAX_TIME_BUDGET_S=45)
    at = open_app(PAGE)
    _fill(at, {**LONG, "train.time_budget": "0"})
    monkeypatch.setenv("VAE_LAB_MIN_FREE_MB", str(10**12))       # a floor no disk has
    at.button(key="train.start").click().run()
    [line] = texts(at.error)
    assert line.startswith("Cannot start: the server's disk has") and "under its floor" in line, line
    assert "VAE_LAB_MIN_FREE_MB" in line and not [p for p in runs.iterdir() if p.name[0] != "."]
    at.selectbox(key="train.data").set_value("upload").run()
    at.file_uploader(key="train.upload").set_value(("bars.npz", tiny_npz(), "application/octet-stream")).run()
    assert any(t.startswith("Upload refused: the server's disk has") for t in texts(at.error)), texts(at.error)
    monkeypatch.setenv("VAE_LAB_MIN_FREE_MB", "0")
    at.selectbox(key="train.data").set_value("mnist5k").run()
    at.button(key="train.start").click().run()
    assert not at.error, texts(at.error)
    [run] = [p for p in runs.iterdir() if p.name[0] != "."]
    assert json.loads((run / "config.json").read_text())["train"]["time_budget"] == 45
    at.button(key="train.stop").click().run()


def test_disk_per_person_counts_their_uploads_and_refuses_more(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_DISK_PER_PERSON_MB=0.01)      # 10 KB; the file is ~35 KB
    blob = tiny_npz()
    at = open_app(PAGE)
    at.selectbox(key="train.data").set_value("upload").run()
    at.file_uploader(key="train.upload").set_value(("bars.npz", blob, "application/octet-stream")).run()
    [line] = texts(at.error)
    kb = f"{len(blob) / 1024:,.0f} KB"
    assert line == (f"Upload refused: your runs and uploads hold 0 KB plus {kb} for this, over your 10 KB on this "
                    "server (VAE_LAB_DISK_PER_PERSON_MB): delete some under Train, Your runs"), line
    assert not (runs / ".uploads").exists()
    monkeypatch.setenv("VAE_LAB_DISK_PER_PERSON_MB", "1")
    at.file_uploader(key="train.upload").set_value(("bars2.npz", blob, "application/octet-stream")).run()
    assert not at.error and "216 training" in at.success[0].value
    [folder] = (runs / ".uploads").iterdir()
    me = at.session_state["app.who_token"]
    assert owners.marked(folder) == [owners.person_of(me)]
    assert quotas.used_by(owners.person_of(me)) >= len(blob)
    monkeypatch.setenv("VAE_LAB_DISK_PER_PERSON_MB", "0.02")    # now under what the upload holds
    at.button(key="train.start").click().run()
    [line] = texts(at.error)
    used = quotas.used_by(owners.person_of(me))
    assert line == (f"Cannot start: your runs and uploads hold {used / 1024:,.0f} KB, over your 20 KB on this "
                    "server (VAE_LAB_DISK_PER_PERSON_MB): delete some under Train, Your runs"), line
    # the upload is listed as theirs, with its size, and Delete gives it up
    assert any("Your runs (0) and uploads (1)" in e.label for e in at.expander)
    at.button(key=f"train.drop_upload.{folder.name}").click().run()
    assert not folder.exists() and "Deleted your upload." in texts(at.success)


def test_one_job_per_person_across_tabs_and_others_only_watch(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path, VAE_LAB_MAX_EPOCHS=0, VAE_LAB_MAX_JOBS=2)
    a = open_app(PAGE)
    _start_long(a)
    poll(a, lambda t: any(p.value > 0 for p in t.get("progress")), timeout=90, interval=0.3)
    # the same person in another tab (same browser: same token) sees the job with its Stop, and cannot start another
    a2 = open_app()
    a2.session_state["app.who_token"] = a.session_state["app.who_token"]
    a2.switch_page(PAGE).run()
    assert _stop_button(a2) and a2.button(key="train.start").proto.disabled
    # another person sees it as another person's: Watch, no Stop; watching shows its dashboard read-only
    b = open_app(PAGE)
    assert not _stop_button(b) and not b.button(key="train.start").proto.disabled
    [others] = [e for e in b.expander if e.label.startswith("Other runs in progress (1)")]
    assert "another person's" in " ".join(m.value for m in others.markdown)
    assert not [x for x in b.button if (x.key or "").startswith("train.stop_any")]
    [watch] = [x for x in b.button if (x.key or "").startswith("train.watch.")]
    watch.click().run()
    assert any(s.value.startswith("Watching ") for s in b.subheader)
    assert b.button(key="train.unwatch") and not _stop_button(b)
    assert not [x for x in b.button if (x.key or "").startswith("train.stop_any")]
    a.button(key="train.stop").click().run()
    poll(a, lambda t: any("topped" in w.value for w in t.warning), timeout=90, interval=0.3)


def test_the_teacher_unlocks_with_the_password_sees_owners_and_stops_anyones_run(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path, VAE_LAB_MAX_EPOCHS=0, VAE_LAB_TEACHER_PASSWORD="correct horse battery")
    a = open_app(PAGE)
    _start_long(a)
    owner = owners.label(owners.person_of(a.session_state["app.who_token"]))
    t = open_app(PAGE)
    t.sidebar.text_input(key="app.teacher_password").set_value("wrong horse").run()
    t.sidebar.button(key="app.teacher_unlock").click().run()
    assert "Wrong password." in texts(t.sidebar.error)
    assert not [x for x in t.sidebar.button if x.key == "app.teacher_leave"]      # still locked
    assert t.sidebar.text_input(key="app.teacher_password").value == ""          # not kept in the session
    time.sleep(1.2)                                              # the next attempt waits a second after a wrong one
    t.sidebar.text_input(key="app.teacher_password").set_value("correct horse battery").run()
    t.sidebar.button(key="app.teacher_unlock").click().run()
    assert any("Teacher mode" in s.value for s in t.sidebar.success)
    assert t.sidebar.button(key="app.teacher_leave")
    [every] = [e for e in t.expander if e.label.startswith("Every run, by owner (1")]
    assert owner in " ".join(m.value for m in every.markdown)
    [others] = [e for e in t.expander if e.label.startswith("Other runs in progress (1)")]
    assert owner in " ".join(m.value for m in others.markdown)
    [stop] = [x for x in t.button if (x.key or "").startswith("train.stop_any.") and ".all." not in x.key]
    stop.click().run()
    assert any(s.value.startswith("Asked ") for s in t.success), texts(t.success)
    poll(a, lambda x: any("topped by request" in w.value for w in x.warning), timeout=90, interval=0.3)


def test_no_teacher_box_without_a_password(monkeypatch, tmp_path):
    make_env(monkeypatch, tmp_path)
    monkeypatch.delenv("VAE_LAB_TEACHER_PASSWORD", raising=False)
    at = open_app(PAGE)
    assert not [x for x in at.sidebar.text_input if x.key == "app.teacher_password"]
    assert any("You are **person " in c.value for c in at.sidebar.caption)


def test_a_person_deletes_their_own_run_after_confirming_and_others_cannot(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    at = open_app(PAGE)
    _fill(at, {"train.epochs": "1", "train.latent_dim": "2", "train.max_train": "300", "train.max_test": "60",
               "train.hidden": "64"})
    at.button(key="train.start").click().run()
    poll(at, lambda t: any("Training finished" in s.value for s in t.success), timeout=120)
    [run] = saved_runs(runs)
    at.run()
    other = open_app(PAGE)
    assert not [x for x in other.button if (x.key or "").startswith("train.delete")]   # not theirs: nothing there
    [mine] = [e for e in at.expander if e.label.startswith("Your runs (1)")]
    assert run.name in " ".join(m.value for m in mine.markdown)
    at.button(key=f"train.delete.{run.name}").click().run()      # the popover's confirm button
    assert not run.exists() and f"Deleted {run.name}." in texts(at.success)
    assert not at.exception


def test_a_damaged_job_is_listed_with_what_was_kept(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    bad = runs / "mnist5k-mlp-2d-20260101-000000-dead"
    bad.mkdir(parents=True)
    (bad / "config.json").write_text(RunConfig().to_json())
    (bad / "job.json").write_bytes(b'{"state": "runn')
    at = open_app(PAGE)
    [damaged] = [e for e in at.expander if e.label == "Damaged runs (1)"]
    said = " ".join(m.value for m in damaged.markdown)
    assert bad.name in said and "damaged: job.json" in said and "no epoch had completed" in said, said
    assert not [x for x in at.button if x.key == f"train.delete.{bad.name}"]     # only the teacher may
