"""Owners without Streamlit: persons from tokens, who may do what, the teacher's password, and the scheduler's owner
rules with real jobs (``python -m vae train --resume``): another person cannot stop, resume or delete a job and the
teacher can; one job per person across two servers sharing a runs folder; a watcher's heartbeats do not keep a job
whose owner is gone; two Resumes at once start one process; a damaged job is never launched; snapshots are thinned
when a job ends."""
import os
import signal
import threading
from pathlib import Path

import pytest
from test_scheduler import config, state, wait

from ui import owners
from ui.owners import Actor, NotYours, TeacherGate
from ui.scheduler import Scheduler
from vae import jobs, upkeep
from vae.record import snapshot_epochs

A, B = owners.person_of("a" * 43), owners.person_of("b" * 43)
TEACHER = Actor(owners.person_of("t" * 43), teacher=True)


def test_a_person_is_a_one_way_hash_of_an_unguessable_token():
    assert owners.PERSON_RE.fullmatch(A) and A != B and A == owners.person_of("a" * 43)
    assert "a" * 8 not in A
    for bad in ("", "short", "x" * 65, "a" * 42 + "!", None, 42, "é" * 43):
        assert not owners.token_ok(bad)
        with pytest.raises(ValueError):
            owners.person_of(bad)
    assert owners.label(A) == f"person {A[2:8]}" and owners.label("") == "nobody"
    assert owners.label("5f1e-session-uuid") == "not a person of the app"


def test_only_the_owner_or_the_teacher_may_act_on_a_run():
    assert Actor(A).may(A) and not Actor(B).may(A) and TEACHER.may(A)
    assert not Actor(A).may("") and TEACHER.may("")          # a run nobody owns is the teacher's alone
    assert not Actor(A).may("ünïcode owner")                  # compared as bytes: no TypeError
    with pytest.raises(NotYours, match="another person's run: only its owner or the teacher can stop it"):
        Actor(B).require(A, "stop", "run-1")
    with pytest.raises(NotYours, match="a run nobody owns: only the teacher can delete it"):
        Actor(A).require("", "delete", "run-2")


def test_the_teachers_password_is_compared_in_constant_time_and_guessing_is_slowed_and_capped():
    assert owners.password_ok("s3cret-words", "s3cret-words")
    assert not owners.password_ok("s3cret-word", "s3cret-words") and not owners.password_ok("", "")
    now = [0.0]
    gate = TeacherGate(budget=5, window=600.0, max_wait=60.0, clock=lambda: now[0])
    assert gate.attempt(A, "guess", "right") == (False, "Wrong password.")
    assert gate.wait(A) == 1.0 and gate.wait(B) == 0.0         # the guesser waits, others do not
    ok, line = gate.attempt(A, "right", "right")               # even the right password waits its turn
    assert not ok and line.startswith("Too many wrong passwords")
    for n in range(1, 4):                                      # 1, 2, 4 s after the 1st, 2nd, 3rd failure
        now[0] += gate.wait(A)
        assert gate.attempt(A, "guess", "right")[0] is False
        assert gate.wait(A) == 2.0 ** n
    now[0] += gate.wait(A)
    assert gate.attempt(A, "right", "right")[0] is True and gate.wait(A) == 0.0
    # new persons cost a guesser nothing, so the server caps all failures: 5 in 600 s here
    gate.attempt(B, "guess", "right")                          # the 5th failure in the window
    other = owners.person_of("c" * 43)
    assert gate.wait(other) == pytest.approx(600.0 - now[0])
    assert not gate.attempt(other, "right", "right")[0]
    now[0] = 601.0
    assert gate.attempt(other, "right", "right")[0] is True


def test_a_flood_of_wrong_passwords_does_not_lock_out_a_teacher_who_unlocked_before():
    now = [0.0]
    gate = TeacherGate(budget=5, window=600.0, max_wait=60.0, clock=lambda: now[0])
    teacher, newcomer = A, owners.person_of("d" * 43)
    assert gate.attempt(teacher, "right", "right")[0] is True
    for i in range(10):                                        # a student making new persons, one guess each
        gate.attempt(owners.person_of(f"{i:02d}" + "e" * 41), "guess", "right")
    assert gate.wait(newcomer) > 500                           # the cap still holds for everyone else
    assert not gate.attempt(newcomer, "right", "right")[0]
    assert gate.wait(teacher) == 0.0 and gate.attempt(teacher, "right", "right")[0] is True
    assert gate.attempt(teacher, "typo", "right")[0] is False  # the teacher's own typos still cost their own wait
    assert gate.wait(teacher) == 1.0


def test_upload_markers_make_owners_and_a_shared_upload_counts_for_each(tmp_path):
    runs, uploads = tmp_path / "runs", tmp_path / "runs" / ".uploads"
    up = uploads / "abcd"
    up.mkdir(parents=True)
    (up / "data.npz").write_bytes(b"x" * 1000)
    owners.mark(up, A)
    owners.mark(up, B)
    assert owners.uploads_of(uploads, A) == [up] and owners.bytes_of(runs, uploads, B) == 1000
    with pytest.raises(ValueError):
        owners.mark(up, "../../etc")                           # only person ids name a marker
    with pytest.raises(NotYours):
        owners.drop_upload(uploads, up, owners.person_of("c" * 43))
    assert owners.drop_upload(uploads, up, A) is False and up.is_dir()    # B still has it
    assert owners.drop_upload(uploads, up, B) is True and not up.exists()


@pytest.fixture
def sched(tmp_path):
    s = Scheduler(tmp_path / "runs", max_jobs=2, interval=0.2)
    yield s
    s.close(stop_jobs=True)


def test_another_person_cannot_stop_resume_or_delete_a_job_and_the_teacher_can(sched):
    a = sched.submit(A, config(epochs=500, max_train=2000), "mnist5k", session_id="tab-a")
    assert jobs.read_status(a)["owner"] == A
    wait(lambda: state(a) == "training", what="A training")
    with pytest.raises(NotYours):
        sched.stop(a, by=Actor(B))
    assert not (a / jobs.STOP).exists() and state(a) == "training"
    with pytest.raises(ValueError, match="stop it first"):
        sched.delete(a, by=Actor(A))                           # not while it trains, even for its owner
    wait(lambda: bool(jobs.read_status(a).get("epoch")), what="A's first epoch")
    os.kill(jobs.read_status(a)["pid"], signal.SIGKILL)
    wait(lambda: state(a) == "interrupted", timeout=30, what="A interrupted")
    with pytest.raises(NotYours):
        sched.resume(Actor(B), a)
    with pytest.raises(NotYours):
        sched.delete(a, by=Actor(B))
    assert state(a) == "interrupted"
    sched.resume(TEACHER, a)                                   # the teacher resumes it: it stays A's
    assert jobs.read_status(a)["owner"] == A
    wait(lambda: state(a) == "training", what="resumed by the teacher")
    sched.stop(a, by=TEACHER)
    wait(lambda: state(a) == "stopped", timeout=60, what="stopped by the teacher")
    sched.delete(a, by=TEACHER)
    assert not a.exists()


def test_one_job_per_person_counts_every_server_sharing_the_runs_folder(sched, tmp_path):
    other = Scheduler(tmp_path / "runs", max_jobs=1, interval=0.2)       # a second replica
    try:
        a = sched.submit(A, config(epochs=500, max_train=2000), "mnist5k")
        with pytest.raises(RuntimeError, match="already have a run training or queued"):
            other.submit(A, config(), "mnist5k")
        b = other.submit(B, config(epochs=500, max_train=2000), "mnist5k")
        wait(lambda: other.active_job_of(A) == a, timeout=10, what="the other replica to see A's job (its scan)")
        sched.stop(a, by=Actor(A))
        other.stop(b, by=Actor(B))
        wait(lambda: jobs.effective_state(jobs.read_status(a)) not in jobs.ACTIVE, what="A ended")
        again = other.submit(A, config(epochs=1), "mnist5k")              # after it ended: allowed
        other.stop(again, by=Actor(A))
    finally:
        other.close(stop_jobs=True)


def test_a_watchers_heartbeats_do_not_keep_a_job_whose_owner_is_gone(tmp_path):
    alive = {"tab-a": True, "tab-b": True}
    s = Scheduler(tmp_path / "runs", max_jobs=1, interval=0.2, heartbeat_timeout=1.0,
                  session_alive=lambda sid: alive.get(sid))
    try:
        a = s.submit(A, config(epochs=500, max_train=2000), "mnist5k", session_id="tab-a")
        wait(lambda: state(a) == "training", what="training")
        stop_beating = threading.Event()

        def watcher():                                   # B's tab polls A's job all along
            while not stop_beating.is_set():
                s.heartbeat(B, "tab-b", a)
                stop_beating.wait(0.2)
        t = threading.Thread(target=watcher, daemon=True)
        t.start()
        alive["tab-b"] = False                           # B's tab is gone: nothing of B's counts anyway
        assert not stop_beating.wait(3.0)                # A's tab is still open (websocket), no heartbeat
        assert state(a) == "training" and not (a / jobs.STOP).exists()
        alive["tab-a"] = None                            # A's tab closes; B keeps polling
        wait(lambda: state(a) == "stopped", timeout=60, what="A's job stopped")
        assert "no heartbeat from its owner's browser" in jobs.read_status(a)["message"]
        stop_beating.set()
        t.join()
    finally:
        s.close(stop_jobs=True)


def _interrupted(root: Path) -> Path:
    """A run of A's killed after its first epoch."""
    first = Scheduler(root, max_jobs=1, interval=0.2)
    try:
        a = first.submit(A, config(epochs=500, max_train=2000), "mnist5k")
        wait(lambda: bool((jobs.read_status(a) or {}).get("epoch")), what="a first epoch")
        os.kill(jobs.read_status(a)["pid"], signal.SIGKILL)
        wait(lambda: state(a) == "interrupted", timeout=30, what="interrupted")
    finally:
        first.close(stop_jobs=True)
    return a


def _starts(run_dir: Path) -> int:
    return sum(e.get("type") == "start" for e in jobs.read_events(run_dir)[0])


def test_two_resumes_at_once_from_two_servers_start_one_process(tmp_path):
    root = tmp_path / "runs"
    a = _interrupted(root)
    killed, before = jobs.read_status(a)["pid"], _starts(a)
    servers = [Scheduler(root, max_jobs=1, interval=0.2) for _ in range(2)]
    barrier, outcomes = threading.Barrier(2), []

    def press(s):
        barrier.wait()
        try:
            s.resume(Actor(A), a)
            outcomes.append("queued")
        except RuntimeError as e:
            outcomes.append(str(e))
    try:
        threads = [threading.Thread(target=press, args=(s,)) for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert outcomes.count("queued") == 1 and len(outcomes) == 2, outcomes
        refused = [o for o in outcomes if o != "queued"][0]
        assert f"{a.name} is already queued" in refused or f"{a.name} is already running" in refused, refused
        wait(lambda: state(a) == "training" and jobs.read_status(a).get("pid") != killed, what="the resumed run")
        launched = sum(len(s._procs) for s in servers)
        assert launched == 1, f"{launched} processes were launched for one run"
        assert _starts(a) == before + 1
        servers[0].stop(a, by=Actor(A))
        wait(lambda: state(a) == "stopped", timeout=60, what="stopped")
        assert _starts(a) == before + 1
    finally:
        for s in servers:
            s.close(stop_jobs=True)


def test_a_damaged_queued_job_is_never_launched_and_only_the_teacher_may_delete_it(tmp_path):
    root = tmp_path / "runs"
    a = jobs.queue_run(root, config(), "mnist5k", owner=A)
    (a / jobs.JOB).write_text('{"state": "queued", "owner": ')          # cut off mid-write
    later = jobs.queue_run(root, config(epochs=500), "mnist5k", owner=B)
    s = Scheduler(root, max_jobs=1, interval=0.2)
    try:
        # the queue is taken oldest first: once the later job is launched, the damaged one was passed over
        # (the claim is written before the process is started and recorded: wait for the record)
        wait(lambda: later in s._procs, what="the later job launched")
        assert list(s._procs) == [later] and not (a / jobs.CLAIM).exists()
        s.stop(later)
        assert jobs.read_status(a)["state"] == "damaged" and owners.owner_of(a) == ""
        with pytest.raises(RuntimeError, match="cannot be resumed"):
            s.resume(Actor(A), a)
        with pytest.raises(NotYours):
            s.delete(a, by=Actor(A))                     # nobody can tell whose it is
        s.delete(a, by=TEACHER)
        assert not a.exists()
    finally:
        s.close(stop_jobs=True)


def test_a_jobs_snapshots_are_thinned_evenly_when_it_ends(tmp_path):
    s = Scheduler(tmp_path / "runs", max_jobs=1, interval=0.2, keep_snapshots=3)
    try:
        a = s.submit(A, config(epochs=7, max_train=300), "mnist5k")
        wait(lambda: state(a) == "done", what="done")
        wait(lambda: len(snapshot_epochs(a)) == 3, timeout=10, what="thinned")
        assert snapshot_epochs(a) == [1, 4, 7]
        assert upkeep.info(a).snapshots == 3
    finally:
        s.close(stop_jobs=True)
