"""The Train page's lists of runs, by whose they are: other people's runs in progress (watch them, read-only),
interrupted runs (Resume: the owner's or the teacher's), damaged runs (shown with what was kept, never launched),
your own runs and uploads (with what they hold against your disk share; Delete after a confirmation), and for the
teacher every run with its owner (Stop, Resume, Delete).

The buttons' callbacks go through ``ui.queue``, whose scheduler checks the owner again: a button a person should not
have (an old page, a forged message) is refused there with one line, shown at the top of the lists.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import streamlit as st

from vae import jobs, upkeep
from vae.util import os_reason

from . import identity, owners, queue, settings, train_panel
from . import state as S


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def _act(verb: str, fn, run_dir: str, done: str) -> None:
    """A list button's callback: do it, and leave one line saying what happened."""
    try:
        fn(run_dir)
    except (RuntimeError, ValueError, owners.NotYours) as e:
        st.session_state[S.TRAIN_NOTICE] = ("error", f"Cannot {verb} {Path(run_dir).name}: {e}")
    except OSError as e:
        st.session_state[S.TRAIN_NOTICE] = ("error", f"Cannot {verb} {Path(run_dir).name}: {os_reason(e)}")
    else:
        st.session_state[S.TRAIN_NOTICE] = ("success", done.format(name=Path(run_dir).name))
    _mine.clear()


def notice() -> None:
    """The line a list's button left, shown once (a fragment's polls keep it on screen until the page reruns)."""
    said = st.session_state.pop(S.TRAIN_NOTICE, None)
    if said:
        (st.success if said[0] == "success" else st.error)(said[1], icon=":material/info:")


def _whose(owner: str, me: str, teacher: bool) -> str:
    if owner and owner == me:
        return "yours"
    return owners.label(owner) if teacher else "another person's"


def _progress(status: dict) -> str:
    if status.get("state") == "running":
        epoch = status.get("epoch_running") or status.get("epoch") or 1
        return f"training, epoch {epoch} of {status.get('epochs', '?')}"
    return "waiting in the queue"


# ------------------------------------------------------------------------------------------ other people's

def others_panel(listed, exclude: str | None = None) -> None:
    """Runs queued or training on this runs folder besides this person's own job: Watch follows one here, read-only;
    the owner (another of their jobs) and the teacher also get Stop."""
    runs = [(p, s) for p, s in queue.active_runs(listed) if str(p) != exclude]
    if not runs:
        return
    who = identity.actor()
    with st.expander(f"Other runs in progress ({len(runs)})", icon=":material/groups:"):
        for path, status in runs:
            c1, c2, c3 = st.columns([4, 1, 1])
            whose = _whose(status.get("owner", ""), who.person, who.teacher)
            c1.markdown(f"**{path.name}** · {_progress(status)} · {whose}")
            c2.button("Watch", key=f"{S.TRAIN_WATCH}.{path.name}", on_click=queue.watch, args=(str(path),),
                      icon=":material/visibility:", help="Follow this run's live charts here (read-only).")
            if who.may(status.get("owner", "")):
                c3.button("Stop", key=f"{S.TRAIN_STOP_ANY}.{path.name}", icon=":material/stop_circle:",
                          on_click=_act, args=("stop", queue.stop, str(path), "Asked {name} to stop."))


def watching(job) -> None:
    """Another person's run followed in this tab: its dashboard, read-only (the teacher also gets Stop). This tab's
    polls are not heartbeats: only the owner's tabs keep a job from being stopped as abandoned."""
    owner = owners.owner_of(job.run_dir)
    who = identity.actor()
    st.subheader(f"Watching {job.run_dir.name}", divider="gray")
    c1, c2, _ = st.columns([1, 1, 3])
    c1.button("Stop watching", key=S.TRAIN_UNWATCH, on_click=queue.watch, args=(None,), icon=":material/close:")
    if who.teacher and job.running:
        c2.button("Stop this run", key=f"{S.TRAIN_STOP_ANY}.watched", icon=":material/stop_circle:",
                  on_click=_act, args=("stop", queue.stop, str(job.run_dir), "Asked {name} to stop."))
    st.caption(f"{_whose(owner, who.person, who.teacher).capitalize()} run: you can follow it here; only its owner "
               f"{'and you (teacher) ' if who.teacher else 'or the teacher '}can stop it.")
    _watched_board()


@st.fragment(run_every=settings.poll_seconds())
def _watched_board() -> None:
    job = queue.watched()
    if job is None:
        return
    snap = job.snapshot()
    if snap["config"] is not None:
        train_panel.dashboard(snap)


def interrupted_panel(listed, exclude: str | None = None) -> None:
    """Runs whose training process ended before they did (a crash, a killed process, a server restart), each with
    what was kept; Resume for the owner and the teacher."""
    runs = [(p, s) for p, s in queue.interrupted_runs(listed) if str(p) != exclude]
    if not runs:
        return
    who = identity.actor()
    mine = queue.current_job()
    busy = mine is not None and mine.running
    with st.expander(f"Interrupted runs ({len(runs)})", icon=":material/pause_circle:", expanded=True):
        for path, status in runs[:10]:
            owner = owners.owner_of(path, status)
            c1, c2 = st.columns([4, 1])
            c1.markdown(f"**{path.name}** · {_whose(owner, who.person, who.teacher)} · "
                        f"{status.get('message') or 'interrupted'}")
            if who.may(owner):
                c2.button("Resume", key=f"{S.TRAIN_RESUME}.{path.name}", icon=":material/play_arrow:",
                          on_click=_act, args=("resume", queue.resume, str(path), "{name} is queued to resume."),
                          disabled=busy and owner == who.person and settings.jobs_per_person() <= 1)


def damaged_panel(listed) -> None:
    """Runs whose ``job.json`` cannot be read: listed with why and what was kept (they are never launched); the
    teacher may delete them (nobody can tell whose they are)."""
    runs = queue.damaged_runs(listed)
    if not runs:
        return
    teacher = identity.is_teacher()
    with st.expander(f"Damaged runs ({len(runs)})", icon=":material/report:", expanded=True):
        for path, status in runs[:10]:
            c1, c2 = st.columns([4, 1])
            c1.markdown(f"**{path.name}** · damaged: {status.get('message')}; {jobs.kept(path, status)}.")
            if teacher:
                _delete_button(c2, path)


# ------------------------------------------------------------------------------------------ your own

@st.cache_data(ttl=5, max_entries=512, show_spinner=False)
def _mine(person: str, runs_dir: str, uploads_dir: str, stamp: tuple) -> tuple[list[tuple], list[tuple]]:
    """(runs as (path, bytes), uploads as (folder, file name, bytes)). Cached for a few seconds, since the Train
    page reruns on every widget change; ``stamp`` (the two folders' change times) renews it at once when a run or an
    upload comes or goes. A run's state is read fresh by the caller."""
    runs = [(str(p), upkeep.folder_bytes(p)) for p in owners.runs_of(runs_dir, person)]
    ups = []
    for folder in owners.uploads_of(uploads_dir, person):
        files = [f.name for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]
        ups.append((str(folder), ", ".join(files) or folder.name, upkeep.folder_bytes(folder)))
    return runs[::-1], ups


def mine_panel() -> None:
    """This person's runs and uploads, what they hold against the disk share, and Delete (after a confirmation; not
    while a run trains; the demo runs are not in the runs folder and never listed)."""
    me = identity.person()
    runs_dir, uploads_dir = settings.runs_dir(), settings.uploads_dir()
    runs, ups = _mine(me, str(runs_dir), str(uploads_dir), (owners.mtime(runs_dir), owners.mtime(uploads_dir)))
    if not runs and not ups:
        return
    used = sum(r[1] for r in runs) + sum(u[2] for u in ups)
    quota = settings.disk_per_person()
    share = f" of your {_mb(quota)}" if quota else ""
    with st.expander(f"Your runs ({len(runs)}) and uploads ({len(ups)}) · {_mb(used)}{share}",
                     icon=":material/folder_open:"):
        for path, size in runs:
            state = jobs.effective_state(jobs.read_status(path)) or "saved"
            c1, c2 = st.columns([4, 1])
            c1.markdown(f"**{Path(path).name}** · {state} · {_mb(size)}")
            if state in jobs.ACTIVE:
                c2.caption("stop it to delete")
            else:
                _delete_button(c2, Path(path))
        for folder, files, size in ups:
            c1, c2 = st.columns([4, 1])
            c1.markdown(f"Upload **{files}** · {_mb(size)}")
            with c2.popover("Delete", icon=":material/delete:"):
                st.caption(f"Delete your upload {files}? Runs trained on it cannot show its images after this.")
                st.button("Delete the upload", key=f"{S.TRAIN_DROP_UPLOAD}.{Path(folder).name}", type="primary",
                          on_click=_drop_upload, args=(folder,))


def _delete_button(where, path: Path) -> None:
    with where.popover("Delete", icon=":material/delete:"):
        st.caption(f"Delete {path.name} and everything in its folder? This cannot be undone.")
        st.button(f"Delete {path.name}", key=f"{S.TRAIN_DELETE}.{path.name}", type="primary",
                  on_click=_act, args=("delete", queue.delete, str(path), "Deleted {name}."))


def _drop_upload(folder: str) -> None:
    try:
        owners.drop_upload(settings.uploads_dir(), folder, identity.person())
    except owners.NotYours as e:
        st.session_state[S.TRAIN_NOTICE] = ("error", f"Cannot delete it: {e}")
    else:
        st.session_state[S.TRAIN_NOTICE] = ("success", "Deleted your upload.")
    _mine.clear()


# ------------------------------------------------------------------------------------------ the teacher

def teacher_panel() -> None:
    """Every run of the runs folder with its owner, state and size: Stop, Resume and Delete any of them."""
    if not identity.is_teacher():
        return
    root = settings.runs_dir()
    paths = sorted((p for p in root.iterdir() if not p.name.startswith(".") and upkeep.is_run_folder(p)),
                   key=owners.mtime, reverse=True) if root.is_dir() else []
    rows = []
    for path in paths[:200]:
        status = jobs.read_status(path)
        rows.append((path, jobs.effective_state(status), owners.owner_of(path, status), upkeep.folder_bytes(path)))
    free = shutil.disk_usage(root).free if root.is_dir() else 0
    with st.expander(f"Every run, by owner ({len(paths)} · {_mb(sum(r[3] for r in rows))}; {_mb(free)} free on the "
                     "disk)", icon=":material/school:"):
        for path, run_state, owner, size in rows:
            c1, c2, c3 = st.columns([4, 1, 1])
            who = f"{owners.label(owner)} (`{owner}`)" if owners.PERSON_RE.fullmatch(owner) else owners.label(owner)
            c1.markdown(f"**{path.name}** · {who} · {run_state or 'saved'} · {_mb(size)}")
            if run_state in jobs.ACTIVE:
                c2.button("Stop", key=f"{S.TRAIN_STOP_ANY}.all.{path.name}", icon=":material/stop_circle:",
                          on_click=_act, args=("stop", queue.stop, str(path), "Asked {name} to stop."))
                continue
            if run_state == "interrupted":
                c2.button("Resume", key=f"{S.TRAIN_RESUME}.all.{path.name}", icon=":material/play_arrow:",
                          on_click=_act, args=("resume", queue.resume, str(path), "{name} is queued to resume."))
            with c3.popover("Delete", icon=":material/delete:"):
                st.caption(f"Delete {path.name} ({owners.label(owner)}'s)? This cannot be undone.")
                st.button(f"Delete {path.name}", key=f"{S.TRAIN_DELETE}.all.{path.name}", type="primary",
                          on_click=_act, args=("delete", queue.delete, str(path), "Deleted {name}."))


def lists(job) -> None:
    """Everything under this person's own job on the Train page, from one read of the runs folder."""
    listed = queue.all_jobs()
    exclude = None if job is None else str(job.run_dir)
    notice()
    watched = queue.watched()
    if watched is not None and str(watched.run_dir) != exclude:
        watching(watched)
    others_panel(listed, exclude)
    interrupted_panel(listed, exclude)
    damaged_panel(listed)
    mine_panel()
    teacher_panel()
