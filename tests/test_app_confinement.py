"""What a run's config (a file a student can write and upload) may make the app read or build.

A data set named by path is read only from the uploads folder or a folder in VAE_LAB_DATA_ROOTS; a model over the
app's budget is refused before it is built. Both with one line, the page still working.
"""
import json
import re
import shutil

import numpy as np
from app_support import ROOT, make_env, open_app, pick_run, texts

DEMO = ROOT / "assets" / "runs" / "mnist-2d"


def _run_naming(runs, data_name: str, name: str = "points-elsewhere"):
    run = runs / name
    shutil.copytree(DEMO, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["name"] = data_name
    (run / "config.json").write_text(json.dumps(cfg))
    return run


def _secret(folder):
    """A readable 28x28 data set: if the app read it, the page would show it without a note."""
    folder.mkdir(parents=True)
    x = np.random.default_rng(0).integers(0, 255, (40, 28, 28), dtype=np.uint8)
    np.savez(folder / "secret.npz", x=x)
    return folder / "secret.npz"


def test_a_data_path_outside_the_allowed_folders_is_not_read(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    secret = _secret(tmp_path / "someone-else")
    _run_naming(runs, str(secret))
    at = pick_run(open_app("app_pages/reconstructions.py"), "points-elsewhere")
    notes = " ".join(texts(at.caption))
    assert "'secret.npz' is not available here" in notes and "built-in MNIST test digits instead" in notes, notes
    assert str(tmp_path) not in notes, "the note names the file, not where it is on the server"
    assert not at.exception and not at.error
    # a traversal out of the uploads folder is outside too
    _run_naming(runs, str(runs / ".uploads" / ".." / ".." / "someone-else" / "secret.npz"), "climbs-out")
    at = pick_run(open_app("app_pages/reconstructions.py"), "climbs-out")
    assert "not available here" in " ".join(texts(at.caption))


def test_a_built_in_set_missing_on_the_server_is_named_without_the_servers_folders(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_DATA_DIR=tmp_path / "no-data", VAE_LAB_CACHE_DIR=tmp_path / "cache")
    _run_naming(runs, "fashion-mnist", "wants-fashion")
    at = pick_run(open_app("app_pages/reconstructions.py"), "wants-fashion")
    notes = " ".join(texts(at.caption))
    assert "not available here (fashion-mnist not found" in notes and "in the data folder" in notes, notes
    assert str(tmp_path) not in notes and not re.search(r"(?<![\w.])/\w", notes), "no server path reaches the page"
    assert not at.exception and not at.error


def test_a_folder_the_teacher_allows_is_read(monkeypatch, tmp_path):
    secret = _secret(tmp_path / "class-data")
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_DATA_ROOTS=str(tmp_path / "class-data"))
    _run_naming(runs, str(secret))
    at = pick_run(open_app("app_pages/reconstructions.py"), "points-elsewhere")
    assert "not available here" not in " ".join(texts(at.caption))
    assert not at.exception and not at.error


def test_a_saved_run_over_the_budget_is_one_line_and_the_rest_works(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path, VAE_LAB_MAX_PARAMS=1000)
    shutil.copytree(DEMO, runs / "too-big")
    at = pick_run(open_app(), "too-big")
    errors = " ".join(texts(at.error))
    assert "over the budget of 1,000 (VAE_LAB_MAX_PARAMS)" in errors and "\n" not in errors, errors
    assert not at.exception


def test_the_app_budget_reads_its_settings(monkeypatch):
    from ui import settings
    from vae.budget import DEFAULT
    b = settings.budget()
    assert b.max_params < DEFAULT.max_params and b.max_layers == 8
    monkeypatch.setenv("VAE_LAB_MAX_LAYERS", "3")
    monkeypatch.setenv("VAE_LAB_MAX_PARAMS", "not a number")
    b = settings.budget()
    assert b.max_layers == 3 and b.max_params == 16_000_000


def test_opening_a_run_from_a_shell_allows_the_folder_of_its_data(tmp_path):
    from vae import launch
    secret = _secret(tmp_path / "mine")
    run = _run_naming(tmp_path / "runs", str(secret))
    _, env, url = launch.command(run, 8999)
    assert str(tmp_path / "mine") in env["VAE_LAB_DATA_ROOTS"].split(":") and url.endswith("?run=points-elsewhere")
    _, env, _ = launch.command(DEMO, 8999)          # a built-in data set: nothing more is allowed
    assert env.get("VAE_LAB_DATA_ROOTS", "") == ""
