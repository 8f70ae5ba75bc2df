"""AppTest: every bad upload is refused through the page with one error line, and nothing else breaks."""
import json
import zipfile

import pytest
from app_support import ROOT, make_env, open_app, texts
from upload_cases import data_cases, run_cases

TRAIN = "app_pages/train.py"


@pytest.mark.parametrize("case", data_cases(), ids=[c[0] for c in data_cases()])
def test_bad_data_upload_is_one_error_line(monkeypatch, tmp_path, case):
    _, name, blob, phrase = case
    runs = make_env(monkeypatch, tmp_path)
    at = open_app(TRAIN)
    at.selectbox(key="train.data").set_value("upload").run()
    at.file_uploader(key="train.upload").set_value((name, blob, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1, texts(at.error)
    msg = at.error[0].value
    assert phrase in msg and "\n" not in msg and "Traceback" not in msg, msg
    # the page still works: the settings are there, Start waits for a good file, nothing was kept
    assert at.button(key="train.start").proto.disabled
    assert at.text_input(key="train.epochs").value == "10"
    assert not (runs / ".uploads").exists() or not any((runs / ".uploads").rglob("*.*"))
    assert at.sidebar.selectbox(key="app.run").value.endswith("mnist-2d")


def _upload_run(at, files):
    at.sidebar.file_uploader(key="app.run_upload.0").set_value(
        [(n, b, "application/octet-stream") for n, b in files]).run()
    at.sidebar.button(key="app.run_upload.add.0").click().run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("case", run_cases(), ids=[c[0] for c in run_cases()])
def test_bad_run_upload_is_one_error_line(monkeypatch, tmp_path, case):
    _, files, phrase = case
    runs = make_env(monkeypatch, tmp_path)
    at = _upload_run(open_app(), files)
    errors = texts(at.sidebar.error)
    assert len(errors) == 1 and not at.main.error, errors
    assert errors[0].startswith("Upload refused: ") and phrase in errors[0] and "\n" not in errors[0], errors[0]
    assert not runs.exists() or not any(runs.iterdir()), "nothing is saved from a refused upload"
    assert at.sidebar.selectbox(key="app.run").value.endswith("mnist-2d")
    assert texts(at.title) == ["VAE Lab"]
    # the refused files do not stay in the session (Streamlit copies a widget's files on every rerun)
    assert [u.key for u in at.sidebar.get("file_uploader")] == ["app.run_upload.1"]
    assert not at.sidebar.file_uploader(key="app.run_upload.1").value


def test_good_run_uploads_as_zip_or_files_are_saved_and_become_active(monkeypatch, tmp_path):
    runs = make_env(monkeypatch, tmp_path)
    demo = ROOT / "assets" / "runs" / "mnist-16d"
    buf = tmp_path / "mine.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        for f in ("model.safetensors", "config.json", "metrics.json"):
            zf.write(demo / f, f"mnist-16d/{f}")
    at = _upload_run(open_app(), [("mine.zip", buf.read_bytes())])
    assert not at.sidebar.error and "Added uploaded-mine-" in at.sidebar.success[0].value
    [saved] = [p for p in runs.iterdir() if p.name.startswith("uploaded-mine")]
    assert at.sidebar.selectbox(key="app.run").value == str(saved)
    assert "16-D latent" in " ".join(texts(at.markdown))
    assert json.loads((saved / "metrics.json").read_text())["uploaded_from"] == "mine.zip"
    # the loose files work too; the uploader was emptied after the first success (a new key)
    files = [(f, (demo / f).read_bytes()) for f in ("model.safetensors", "config.json")]
    at.sidebar.file_uploader(key="app.run_upload.1").set_value(
        [(n, b, "application/octet-stream") for n, b in files]).run()
    at.sidebar.button(key="app.run_upload.add.1").click().run()
    assert not at.exception and not at.sidebar.error
    assert len([p for p in runs.iterdir() if p.name.startswith("uploaded-")]) == 2


def _hostile():
    """The CLI's table of hostile data files (bench/hostile_files.py), the ones a page upload can carry:
    single files needing no special limits."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from labkit.hostile_files import cases
    folder = Path(tempfile.mkdtemp(prefix="vae-hostile-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return [(name, path, word) for name, (path, args, word) in cases(folder).items()
            if not args and path is not None and Path(path).is_file()]


@pytest.mark.parametrize("case", _hostile(), ids=lambda c: c[0])
def test_every_hostile_file_of_the_cli_table_is_refused_by_the_page(monkeypatch, tmp_path, case):
    _, path, word = case
    make_env(monkeypatch, tmp_path)
    at = open_app(TRAIN)
    at.selectbox(key="train.data").set_value("upload").run()
    at.file_uploader(key="train.upload").set_value((path.name, path.read_bytes(), "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and word.lower() in at.error[0].value.lower(), texts(at.error)
    assert at.error[0].value.startswith("Upload refused: ") and "\n" not in at.error[0].value
