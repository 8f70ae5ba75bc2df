"""Keeping a runs folder within bounds (vae.upkeep, python -m vae runs) and seeing damage instead of losing it."""
import json
import os
import time

import pytest
from helpers import tiny_split

from vae import jobs, upkeep
from vae.cli import main
from vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vae.pipeline import train_run
from vae.record import snapshot_epochs


def _run(root, name, epochs=5):
    cfg = RunConfig(model=ModelConfig(image_size=8, latent_dim=2, hidden=(8,)),
                    train=TrainConfig(epochs=epochs, batch_size=32, threads=1), data=DataConfig(name="blobs"))
    out = root / name
    train_run(cfg, tiny_split(n_train=64, n_test=16), out, callback=jobs.JobControl(out))
    return out


def test_thin_keeps_evenly_spaced_snapshots_with_the_first_and_last(tmp_path):
    run = _run(tmp_path, "r", epochs=9)
    assert snapshot_epochs(run) == list(range(1, 10))
    assert upkeep.thin_snapshots(run, 3) == 6
    assert snapshot_epochs(run) == [1, 5, 9]
    assert upkeep.thin_snapshots(run, 5) == 0


def test_cli_ls_prune_and_rm(tmp_path, capsys):
    old, new = _run(tmp_path, "old"), _run(tmp_path, "new")
    past = time.time() - 10 * 86400
    for p in old.rglob("*"):
        os.utime(p, (past, past))
    assert main(["runs", "ls", "--root", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["run"] for r in listed["runs"]] == ["old", "new"] and all(r["state"] == "done" for r in listed["runs"])
    assert main(["runs", "prune", "--root", str(tmp_path), "--older-than", "7", "--keep-snapshots", "2"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["removed"] == ["old"] and res["snapshots_removed"] == 3 and not old.exists()
    assert snapshot_epochs(new) == [1, 5]
    assert main(["runs", "rm", "--root", str(tmp_path), "new"]) == 0 and not new.exists()


def test_rm_refuses_a_training_run_and_anything_outside_the_root(tmp_path, capsys):
    run = _run(tmp_path, "busy")
    jobs.write_status(run, state="running", pid=os.getpid(), host=jobs.HOST,
                      proc_start=jobs.process_start(os.getpid()))
    for name, needle in (("busy", "busy is running; stop it first"), ("../x", "not a run folder"),
                         ("nothing", "not a run folder")):
        assert main(["runs", "rm", "--root", str(tmp_path), name]) == 2
        assert needle in capsys.readouterr().err
    assert run.exists()


def _upload(root, digest, owners, days_old=0.0):
    """A data upload as the app keeps it: root/.uploads/<digest>/<file>, a marker per owner."""
    folder = root / upkeep.UPLOADS / digest
    folder.mkdir(parents=True)
    (folder / "digits.npz").write_bytes(b"x" * 100_000)
    for who in owners:
        (folder / (upkeep.OWNER_MARK + who)).touch()
    past = time.time() - days_old * 86400
    for p in folder.iterdir():
        os.utime(p, (past, past))
    return folder


def test_the_cli_lists_and_cleans_data_uploads_but_keeps_the_ones_a_run_uses(tmp_path, capsys):
    run = _run(tmp_path, "on-upload", epochs=2)
    used = _upload(tmp_path, "aaaa", ["p1"], days_old=30)
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["name"] = str(used / "digits.npz")             # as the app records a run trained on an upload
    (run / "config.json").write_text(json.dumps(cfg))
    old, fresh, shared = (_upload(tmp_path, "bbbb", ["p1"], 30), _upload(tmp_path, "cccc", ["p1"]),
                          _upload(tmp_path, "dddd", ["p1", "p2"], 30))
    assert main(["runs", "ls", "--root", str(tmp_path)]) == 0
    rows = {r["run"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]}
    assert set(rows) == {"on-upload", ".uploads/aaaa", ".uploads/bbbb", ".uploads/cccc", ".uploads/dddd"}
    assert rows[".uploads/dddd"]["state"] == "upload" and rows[".uploads/dddd"]["owner"] == "p1,p2"
    assert rows[".uploads/bbbb"]["mb"] == 0.1
    assert main(["runs", "prune", "--root", str(tmp_path), "--older-than", "7", "--owner", "p1", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["removed"] == [".uploads/bbbb"]
    assert old.exists()
    # the run is recent, so its upload stays although it is old; the shared one is not p1's alone; the fresh one stays
    assert main(["runs", "prune", "--root", str(tmp_path), "--older-than", "7", "--owner", "p1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["removed"] == [".uploads/bbbb"]
    assert not old.exists() and used.exists() and fresh.exists() and shared.exists()
    for name, needle in ((".uploads/aaaa", ".uploads/aaaa is the data of on-upload; delete those runs first"),
                         (".uploads/../on-upload", "not a data upload"), (".uploads/zzzz", "not a data upload")):
        assert main(["runs", "rm", "--root", str(tmp_path), name]) == 2
        assert needle in capsys.readouterr().err
    assert used.exists() and run.exists()
    assert main(["runs", "rm", "--root", str(tmp_path), "on-upload", ".uploads/aaaa"]) == 0
    assert not run.exists() and not used.exists()
    # an old run and the old upload it was trained on go together; a dry run says so and deletes neither
    gone = _run(tmp_path, "old-run", epochs=1)
    data = _upload(tmp_path, "eeee", ["p2"], 30)
    cfg["data"]["name"] = str(data / "digits.npz")
    (gone / "config.json").write_text(json.dumps(cfg))
    past = time.time() - 30 * 86400
    for p in gone.rglob("*"):
        os.utime(p, (past, past))
    for dry in (["--dry-run"], []):
        assert main(["runs", "prune", "--root", str(tmp_path), "--older-than", "7", *dry]) == 0
        removed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["removed"]
        assert sorted(removed) == [".uploads/dddd", ".uploads/eeee", "old-run"]
        assert gone.exists() == data.exists() == shared.exists() == bool(dry) and fresh.exists()


def test_a_corrupt_job_record_reads_as_damaged_and_is_listed(tmp_path):
    run = _run(tmp_path, "r", epochs=2)
    (run / jobs.JOB).write_text("{ not json")
    status = jobs.read_status(run)
    assert status["state"] == "damaged" and "not valid JSON" in status["message"]
    assert jobs.effective_state(status) == "damaged"
    assert [(p.name, s["state"]) for p, s in jobs.list_jobs(tmp_path)] == [("r", "damaged")]
    assert upkeep.list_runs(tmp_path)[0].state == "damaged"


def test_a_reused_pid_is_not_the_job(tmp_path):
    """After a crash or a reboot the job's pid may belong to another process: its start time tells them apart."""
    status = {"state": "running", "host": jobs.HOST, "pid": os.getpid(), "proc_start": "another-boot:12345"}
    assert not jobs.is_alive(status)
    status["proc_start"] = jobs.process_start(os.getpid())
    assert jobs.is_alive(status)


@pytest.mark.parametrize("argv, needle", [(["prune", "--keep-snapshots", "0"], "--keep-snapshots must be >= 1"),
                                          (["frobnicate"], "invalid choice")])
def test_bad_runs_commands_are_one_line(tmp_path, capsys, argv, needle):
    assert main(["runs", *argv[:1], "--root", str(tmp_path), *argv[1:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_data_roots_read_only_inside_their_folders(tmp_path, capsys):
    """The app's jobs pass its uploads folder: a config naming any other file, or a link out of the folder, is one
    line and nothing is read; built-in names always work."""
    import numpy as np

    from vae.data import DataError, load_dataset, where_allowed
    uploads, elsewhere = tmp_path / "uploads", tmp_path / "elsewhere"
    uploads.mkdir()
    elsewhere.mkdir()
    x = (np.random.default_rng(0).random((20, 8, 8)) * 255).astype(np.uint8)
    np.savez(elsewhere / "secret.npz", x=x)
    np.savez(uploads / "mine.npz", x=x)
    (uploads / "link.npz").symlink_to(elsewhere / "secret.npz")
    roots = [uploads]
    assert where_allowed("mnist5k", roots) is None and where_allowed(str(uploads / "mine.npz"), roots) is None
    assert len(load_dataset(str(uploads / "mine.npz"), roots=roots).train) > 0
    for spec in (elsewhere / "secret.npz", uploads / "link.npz", uploads / ".." / "elsewhere" / "secret.npz"):
        with pytest.raises(DataError, match="'secret.npz' is not available here|'link.npz' is not available here"):
            load_dataset(str(spec), roots=roots)
    assert main(["train", "--data", str(elsewhere / "secret.npz"), "--data-roots", str(uploads), "--epochs", "1",
                 "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not available here" in err[0] and str(elsewhere) not in err[0]
    assert not (tmp_path / "r").exists()


def test_sizes_are_read_while_a_job_replaces_its_files(tmp_path, monkeypatch):
    """A checkpoint folder replaced during the walk (a job writing) is skipped, never an error; links are not
    followed; an uploaded run's owner is its upload mark."""
    run = tmp_path / "r"
    (run / "checkpoint.new").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoint.new" / "w.bin").write_bytes(b"x" * 100)
    (run / "link").symlink_to("/etc/hostname")
    real_walk = os.walk

    def walk_while_a_job_renames(path, *a, **k):
        for parent, dirs, files in real_walk(path, *a, **k):
            if "checkpoint.new" in dirs:          # the job renames it just after the listing
                os.rename(run / "checkpoint.new", run / "checkpoint")
            yield parent, dirs, files
    monkeypatch.setattr(upkeep.os, "walk", walk_while_a_job_renames)
    assert upkeep.folder_bytes(run) == 2
    (run / f"{upkeep.OWNER_MARK}p-{'a' * 24}").touch()
    assert upkeep.info(run).owner == f"p-{'a' * 24}"


def test_an_upload_is_known_by_its_digest_wherever_the_run_saw_it_and_a_linked_uploads_folder_is_refused(
        tmp_path, capsys):
    """A run trained in a container recorded /runs/.uploads/<digest>/<file>, and a CLI run a relative path: pruned
    from the host's view of the folder, their uploads still count as used. A .uploads that is a link is not followed."""
    root = tmp_path / "host-view"
    root.mkdir()
    seen = {"in-container": "/runs/.uploads/aaaa/digits.npz", "relative": "runs/.uploads/bbbb/digits.npz"}
    for name, path in seen.items():
        run = _run(root, name, epochs=1)
        cfg = json.loads((run / "config.json").read_text())
        cfg["data"]["name"] = path
        (run / "config.json").write_text(json.dumps(cfg))
        _upload(root, path.split("/")[-2], ["p1"], days_old=30)
    assert upkeep.uploads_in_use(root) == {".uploads/aaaa": ["in-container"], ".uploads/bbbb": ["relative"]}
    assert main(["runs", "prune", "--root", str(root), "--older-than", "7"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["removed"] == []
    elsewhere = tmp_path / "elsewhere"
    _upload(elsewhere, "cccc", ["p1"])
    other = tmp_path / "other-root"
    other.mkdir()
    (other / upkeep.UPLOADS).symlink_to(elsewhere / upkeep.UPLOADS)
    assert main(["runs", "rm", "--root", str(other), ".uploads/cccc"]) == 2
    assert "not a data upload" in capsys.readouterr().err
    assert (elsewhere / upkeep.UPLOADS / "cccc").is_dir()
