"""Who owns what in the app's runs folder, and who may do what to it. No Streamlit here (``ui.identity`` is the
browser side).

- A **person** is ``p-`` + 24 hex digits: a hash of the random token their browser keeps in a cookie
  (``ui.identity``). Only the hash is ever written (``job.json``'s ``owner``, the upload markers) or shown (its first
  six digits, as "person 3f9a2c"), so nothing the app stores or shows lets anyone act as someone else.
- A run's **owner** is its ``job.json`` ``owner`` (a run trained in the app), else the marker ``.owner-<person>`` in
  its folder (a run uploaded in the app). A data-set upload's owners are the markers in its folder under the uploads
  folder (the same file uploaded by two people is stored once, and counts for both).
- An **actor** is a person in a session, with the teacher's rights or not. Only a run's owner or the teacher may stop,
  resume or delete it; a run nobody owns (a damaged ``job.json``, a run made before owners) is the teacher's alone.
- The **teacher's password** is compared in constant time; failed attempts are slowed per person and capped per
  server (``TeacherGate``).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from vae import jobs, upkeep

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")
PERSON_RE = re.compile(r"p-[0-9a-f]{24}")
MARK = upkeep.OWNER_MARK


class NotYours(PermissionError):
    """One line: this actor may not do that to that run."""


def token_ok(token) -> bool:
    """A browser token as the app makes them (``secrets.token_urlsafe(32)``: 43 URL-safe characters), or close."""
    return isinstance(token, str) and TOKEN_RE.fullmatch(token) is not None


def person_of(token: str) -> str:
    """The person a token stands for: a one-way hash, so the stored id cannot be turned back into the token."""
    if not token_ok(token):
        raise ValueError("not a person token")
    return "p-" + hashlib.sha256(b"vae-lab person\0" + token.encode("ascii")).hexdigest()[:24]


def label(owner: str) -> str:
    """How an owner is shown: "person 3f9a2c" (what that person's sidebar shows them), or "nobody"."""
    if PERSON_RE.fullmatch(owner or ""):
        return f"person {owner[2:8]}"
    return "nobody" if not owner else "not a person of the app"


@dataclass(frozen=True)
class Actor:
    person: str
    teacher: bool = False

    def may(self, owner: str) -> bool:
        """May this actor stop, resume or delete a run owned by ``owner``?"""
        return self.teacher or (bool(owner) and hmac.compare_digest(owner.encode(), self.person.encode()))

    def require(self, owner: str, verb: str, name: str) -> None:
        if not self.may(owner):
            whose = "a run nobody owns" if not owner else "another person's run"
            raise NotYours(f"{name} is {whose}: only {'the teacher' if not owner else 'its owner or the teacher'} "
                           f"can {verb} it")


# ------------------------------------------------------------------------------------------ what is whose

def mark(folder: str | Path, person: str) -> None:
    """Record ``person`` as an owner of ``folder`` (an uploaded run, or a data upload's folder)."""
    if not PERSON_RE.fullmatch(person):
        raise ValueError("not a person id")
    (Path(folder) / f"{MARK}{person}").touch()


def marked(folder: str | Path) -> list[str]:
    return [p for p in upkeep.owners_marked(folder) if PERSON_RE.fullmatch(p)]


def owner_of(run_dir: str | Path, status: dict | None = None) -> str:
    """The run's owner: ``job.json``'s ``owner`` (trained here), else its upload marker; "" when nobody's."""
    status = jobs.read_status(run_dir) if status is None else status
    if status is not None:
        return upkeep.owner_of(run_dir, status)
    found = marked(run_dir)
    return found[0] if found else ""


def runs_of(runs_dir: str | Path, person: str) -> list[Path]:
    """The run folders directly under ``runs_dir`` that ``person`` owns, oldest first."""
    return sorted((p for p in upkeep.run_folders(runs_dir) if owner_of(p) == person), key=mtime)


def mtime(path: Path) -> float:
    """When ``path`` last changed (0 for one deleted meanwhile)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def uploads_of(uploads_dir: str | Path, person: str) -> list[Path]:
    """The data-upload folders (``uploads_dir/<digest>/``) ``person`` is an owner of."""
    root = Path(uploads_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and person in marked(p))


def bytes_of(runs_dir: str | Path, uploads_dir: str | Path, person: str) -> int:
    """What ``person`` keeps on the server's disk: their runs and their data uploads."""
    return sum(upkeep.folder_bytes(p) for p in [*runs_of(runs_dir, person), *uploads_of(uploads_dir, person)])


def active_jobs_of(runs_dir: str | Path, person: str) -> list[Path]:
    """``person``'s jobs that are queued or training, from the shared runs folder (every replica's)."""
    return [p for p, s in jobs.list_jobs(runs_dir)
            if s.get("owner") == person and jobs.effective_state(s) in jobs.ACTIVE]


def drop_upload(uploads_dir: str | Path, folder: str | Path, person: str) -> bool:
    """``person`` gives up a data upload: their marker goes, and the upload too once nobody owns it. True when the
    file itself was deleted. Refuses a folder that is not directly under ``uploads_dir`` or not theirs."""
    import shutil
    root, folder = Path(uploads_dir).resolve(), Path(folder)
    if folder.resolve().parent != root or folder.is_symlink() or person not in marked(folder):
        raise NotYours(f"{folder.name} is not one of your uploads")
    (folder / f"{MARK}{person}").unlink(missing_ok=True)
    if marked(folder):
        return False
    shutil.rmtree(folder)
    return True


# ------------------------------------------------------------------------------------------ the teacher

def password_ok(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so the length of the password does not show either)."""
    a = hashlib.sha256(given.encode("utf-8", "replace")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(a, b) and bool(expected)


class TeacherGate:
    """Slows and caps guessing of the teacher's password. Per person: after the n-th failure the next attempt waits
    ``min(max_wait, 2 ** (n - 1))`` seconds. Per server: at most ``budget`` failures in any ``window`` seconds; beyond
    that every attempt (the right password too) waits until the oldest failure leaves the window, since a guesser can
    make new persons at will. A person who has given the right password on this server before is not held by the
    server's cap (only by their own wait): otherwise a student flooding wrong guesses would lock the teacher out of
    teacher mode, and becoming that person takes their 256-bit token. Thread-safe; ``clock`` is injectable for
    tests."""

    def __init__(self, budget: int = 30, window: float = 600.0, max_wait: float = 60.0, clock=time.monotonic):
        self.budget, self.window, self.max_wait, self.clock = budget, window, max_wait, clock
        self._lock = threading.Lock()
        self._failures: deque[float] = deque()
        self._person: dict[str, tuple[int, float]] = {}      # person -> (failures in a row, when the last was)
        self._known: set[str] = set()                        # persons who gave the right password here before

    def wait(self, person: str) -> float:
        """Seconds before ``person`` may try again (0: now)."""
        with self._lock:
            now = self.clock()
            while self._failures and now - self._failures[0] > self.window:
                self._failures.popleft()
            capped = len(self._failures) >= self.budget and person not in self._known
            server = self._failures[0] + self.window - now if capped else 0.0
            n, last = self._person.get(person, (0, 0.0))
            own = last + min(self.max_wait, 2.0 ** (n - 1)) - now if n else 0.0
            return max(0.0, server, own)

    def attempt(self, person: str, given: str, expected: str) -> tuple[bool, str]:
        """(unlocked, the one line to show)."""
        wait = self.wait(person)
        if wait > 0:
            return False, f"Too many wrong passwords: try again in {wait:.0f} s."
        if password_ok(given, expected):
            with self._lock:
                self._person.pop(person, None)
                self._known.add(person)
            return True, "Teacher mode: you can stop, resume and delete any run, and see who owns each."
        with self._lock:
            now = self.clock()
            self._failures.append(now)
            n, _ = self._person.get(person, (0, 0.0))
            self._person[person] = (n + 1, now)
        return False, "Wrong password."
