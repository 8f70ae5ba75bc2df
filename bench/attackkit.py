"""What bench/class_attacks.py attacks the app with, and how it watches the server while it does.

- ``Tab``: one browser tab over Streamlit's websocket (``labkit.stclient.Session``) that is a person: it sends the
  ``vaelab_person`` cookie a browser keeps (``ui/identity.py``) with the websocket's opening request, uploads files
  the way the browser does, and can send a widget id it was never shown (a forged click).
- Uploads, as Streamlit 1.67's frontend sends them: a ``file_urls_request`` BackMsg (file names) answered by a
  ``file_urls_response`` ForwardMsg (an upload URL per file); one ``PUT /_stcore/upload_file/<session>/<file id>``
  each, a multipart form with one file, carrying the ``_streamlit_xsrf`` cookie the server set (on
  ``/_stcore/health``) and the same token in ``X-Xsrftoken``; then the widget's value, a ``FileUploaderState``
  listing the files the server took.
- ``Leaks``: every page an attack tab is shown is searched for a traceback (an exception element with its type or
  stack), a server path or Python's "Traceback" text; a path the tab itself sent, shown back, is not a leak.
- The server (``attack_server``): the app as ``./run.sh app`` serves it (``labkit.appserver``) with a fresh runs
  folder, every ``VAE_LAB_*`` variable of this environment left out (each class limit at its default), a teacher's
  password and a 3 s heartbeat timeout (the abandoned-tab rule acts within an attack's time); or, ``front``, N such
  servers as deploy/replicas.sh N starts them behind deploy/nginx.conf (``Served``: each tab over TLS, with the
  login and a sticky cookie that pins it to the replica it chose). Training processes outlive their server: found
  by their runs folder in their command line, they are killed on the way out, whatever happened.
- Memory from /proc: ``Peaks`` samples the servers' VmRSS (summed) every 50 ms, their children's every second, in a
  thread, since VmHWM (the kernel's peak, reported beside it) covers a process's whole life (restarting it with
  ``echo 5 > /proc/PID/clear_refs`` is not reliable here, it came back to an earlier peak).
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import secrets
import signal
import ssl
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from loadkit import Target
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from labkit import nginxfront as nf
from labkit.appserver import ROOT, app_server
from labkit.stclient import RunResult, Session
from labkit.stclient.media import cookie_header, set_cookies
from labkit.stclient.protocol import local_path

PERSON_COOKIE, XSRF_COOKIE, STICKY_COOKIE = "vaelab_person", "_streamlit_xsrf", "vaelab_replica"
TEACHER_PASSWORD = "class attacks " + secrets.token_hex(8)
HEARTBEAT_S = 3.0


def token() -> str:
    """A person's browser token, made as the app makes them (``secrets.token_urlsafe(32)``)."""
    return secrets.token_urlsafe(32)


# ------------------------------------------------------------------------------------------------ HTTP
async def http(host: str, port: int, method: str, path: str, headers: dict | None = None,
               body: tuple[bytes, ...] = (),
               tls: ssl.SSLContext | None = None) -> tuple[int, dict[str, list[str]], bytes]:
    """One HTTP/1.1 request on a new connection (over TLS with ``tls``): (status, headers by lower-case name, body);
    status 0 when the server closed the connection without an answer."""
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    except OSError:
        return 0, {}, b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close", "Accept: */*"]
    if method in ("PUT", "POST"):
        lines.append(f"Content-Length: {sum(len(b) for b in body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items() if v]
    early = b""
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        if sum(len(b) for b in body) > 1 << 20:   # a server refusing a large body by its headers answers at once
            with contextlib.suppress(asyncio.TimeoutError):
                early = await asyncio.wait_for(reader.read(1 << 16), 0.5)
        for part in body if not early else ():
            view = memoryview(part)
            for i in range(0, len(view), 1 << 20):    # in 1 MB pieces: no copy of a large body, the loop keeps going
                writer.write(view[i:i + (1 << 20)])
                await writer.drain()
    except OSError:
        pass          # the server answered and closed before the whole body was sent: read what it said
    try:
        data = early + await reader.read()
    except OSError:
        data = early
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    rows = head.decode("latin-1").split("\r\n")
    try:
        status = int(rows[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return 0, {}, payload
    out: dict[str, list[str]] = {}
    for row in rows[1:]:
        name, _, value = row.partition(":")
        out.setdefault(name.strip().lower(), []).append(value.strip())
    return status, out, payload


def set_cookie(headers: dict[str, list[str]], name: str) -> str:
    for value in headers.get("set-cookie", []):
        if value.startswith(name + "="):
            return value[len(name) + 1:].split(";", 1)[0]
    return ""


# ------------------------------------------------------------------------------------------------ a tab
def readable(blob: bytes, limit: int = 1 << 20) -> list[str]:
    """The text of a small uploaded file, or of each small entry of a zip: what the page may show back to its sender."""
    if blob[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                return [zf.read(i).decode(errors="replace") for i in zf.infolist() if i.file_size <= limit]
        except (zipfile.BadZipFile, ValueError, OSError, RuntimeError, NotImplementedError):
            pass
    return [blob.decode(errors="replace")] if len(blob) <= limit else []


class Leaks:
    """Every page shown to an attack tab, searched for what must never reach a browser."""

    def __init__(self, needles: list[str]):
        self.needles = [n for n in needles if n]
        self.pages = 0
        self.found: list[str] = []

    def check(self, tab: Tab, r: RunResult) -> None:
        self.pages += 1
        for e in tab.exceptions():
            if e["trace"] or e["type"]:   # with client.showErrorDetails "none" only a generic line is sent
                self.found.append(f"{r.action}: {e['type'] or 'an exception'} ({e['trace']} trace lines): "
                                  f"{e['message'][:120]}")
        for text in tab.texts():
            for n in self.needles:
                if n in text and not self.echo(tab, text, n):
                    self.found.append(f"{r.action}: {n!r} in {text[:160]!r}")

    @staticmethod
    def echo(tab: Tab, text: str, needle: str) -> bool:
        """Every path around ``needle`` in ``text`` is one the tab itself sent (a link's value shown back to who
        typed it is not the server's path leaking)."""
        tokens = re.findall(r"[\w./~-]*" + re.escape(needle) + r"[\w./~-]*", text)
        return bool(tokens) and all(any(t in s for s in tab.sent) for t in tokens)


class Tab(Session):
    """A browser tab of the person whose token is ``person`` (None: a first visit, no cookie yet). Behind nginx
    (``Served.tab_kw``): ``ssl_context``, ``headers`` (the login) and ``cookies`` (the sticky replica cookie); like a
    browser it keeps every cookie an answer sets and sends them all with each request and the websocket."""

    def __init__(self, url: str, person: str | None = None, page: str = "", query: str = "", *,
                 leaks: Leaks | None = None, timeout: float = 60.0, **session_kw):
        super().__init__(url, page=page, query=query, timeout=timeout, preflight=False, **session_kw)
        self.person, self.leaks = person, leaks
        if person:
            self.cookies[PERSON_COOKIE] = person
        self.sent = [query]                   # what this tab sent that the page may show back: query, small files
        self._urls: dict[str, asyncio.Future] = {}

    @property
    def xsrf(self) -> str:
        return self.cookies.get(XSRF_COOKIE, "")

    def cookie_line(self) -> str:
        return cookie_header(self.cookies).get("Cookie", "")

    async def request(self, method: str, path: str, headers: dict | None = None, body=()) -> tuple[int, dict, bytes]:
        sent = {**self.headers, "Cookie": self.cookie_line(), **(headers or {})}
        status, got, payload = await http(self._host, self._port, method, path, sent, body,
                                          self.ssl_context if self._tls else None)
        set_cookies(self.cookies, got.get("set-cookie", []))
        return status, got, payload

    async def open(self) -> RunResult:
        """As the browser: the health check (it sets the XSRF cookie), the websocket with the cookies, a first run."""
        t0 = time.perf_counter()
        await self.request("GET", "/_stcore/health")
        headers = {k: v for k, v in self.headers.items() if k.lower() != "user-agent"}
        agent = {"user_agent_header": v for k, v in self.headers.items() if k.lower() == "user-agent"}
        self._ws = await websockets.connect(
            self.ws_url, subprotocols=["streamlit"], origin=self._origin, max_size=None, proxy=None,
            ping_interval=None, open_timeout=self.timeout, compression="deflate",
            additional_headers={**headers, **cookie_header(self.cookies)} or None,
            **({"ssl": self.ssl_context} if self._tls and self.ssl_context else {}), **agent)
        set_cookies(self.cookies, self._ws.response.headers.get_all("Set-Cookie"))
        self.connect_seconds = time.perf_counter() - t0
        self._reader = asyncio.create_task(self._read_loop())
        self.open_result = await self._rerun("open", page_script_hash="", page_name=self.page)
        return self.open_result

    async def _rerun(self, action: str, **kw) -> RunResult:
        r = await super()._rerun(action, **kw)
        if self.leaks is not None:
            self.leaks.check(self, r)
        return r

    def _on_message(self, raw: bytes) -> None:
        msg = ForwardMsg.FromString(raw)
        if msg.WhichOneof("type") == "file_urls_response":
            fut = self._urls.pop(msg.file_urls_response.response_id, None)
            if fut is not None and not fut.done():
                fut.set_result(list(msg.file_urls_response.file_urls))
            return
        super()._on_message(raw)

    # ------------------------------------------------------------------------ what it shows
    def keys(self) -> set[str]:
        return {w["key"] for w in self.widgets.values() if w["key"]}

    def widget_id(self, key: str) -> str:
        return self.model.find(key).id

    def alerts(self, sidebar: bool | None = None) -> list[str]:
        """Text of the error/warning/info/success boxes, in the sidebar or the main area (None: both)."""
        return [e["text"] for e in self.elements if e["type"] == "alert"
                and (sidebar is None or (e["path"][0] == 1) == sidebar)]

    def exceptions(self) -> list[dict]:
        """The exception elements on the page: type, message and how many traceback lines came with them."""
        return [{"type": n.proto.type, "message": n.proto.message, "trace": len(n.proto.stack_trace),
                 "frames": [ln.splitlines()[0] for ln in n.proto.stack_trace][-3:]}
                for n in self.model.ordered() if n.kind == "exception" and not n.proto.is_warning]

    def who(self) -> str | None:
        """The six digits the sidebar names this person by ("You are **person 3f9a2c**")."""
        for text in self.texts():
            m = re.search(r"You are \*\*person ([0-9a-f]{6})", text)
            if m:
                return m.group(1)
        return None

    # ------------------------------------------------------------------------ what it sends
    async def forge(self, widget_id: str) -> RunResult:
        """A click on a button this tab was never shown: its id, sent as a trigger with the next rerun."""
        return await self._rerun(f"forged {widget_id[-40:]}", extra=[WidgetState(id=widget_id, trigger_value=True)])

    async def send(self, key: str, **field) -> RunResult:
        """A forged value for widget ``key``: one WidgetState field set to anything (``json_value="{not json"``)."""
        w = self.model.find(key)
        state = WidgetState(id=w.id)
        [(name, value)] = field.items()
        if name.endswith("_array_value"):
            getattr(state, name).data[:] = value
        else:
            setattr(state, name, value)
        return await self._send_state(w, state, f"forged {key}")

    def uploader(self, key: str):
        """The file uploader whose key is ``key``, or starts with it (the sidebar's key has a counter)."""
        for w in self.widgets.values():
            if w["type"] == "file_uploader" and w["key"] and w["key"].startswith(key):
                return self.model.winfo[w["id"]]
        raise KeyError(f"no file uploader {key!r}")

    async def upload(self, key: str, files: list[tuple[str, bytes]]) -> tuple[list[int], RunResult]:
        """Drop ``files`` on the uploader ``key``: upload URLs, one PUT each, then the widget's value (the files the
        server took). Returns the PUT statuses and the rerun."""
        w = self.uploader(key)
        rid = secrets.token_hex(6)
        fut = asyncio.get_running_loop().create_future()
        self._urls[rid] = fut
        back = BackMsg()
        back.file_urls_request.request_id = rid
        back.file_urls_request.session_id = self.session_id or ""
        back.file_urls_request.file_names.extend(name for name, _ in files)
        await self._ws.send(back.SerializeToString())
        urls = await asyncio.wait_for(fut, self.timeout)
        state, statuses = WidgetState(id=w.id), []
        self.sent += [text for _, blob in files for text in readable(blob)]
        for (name, blob), u in zip(files, urls):
            statuses.append(await self.put(u.upload_url, name, blob))
            if statuses[-1] in (200, 204):
                info = state.file_uploader_state_value.uploaded_file_info.add()
                info.file_id, info.name, info.size = u.file_id, name, len(blob)
                info.file_urls.CopyFrom(u)
        return statuses, await self._send_state(w, state, f"upload {key}")

    async def put(self, url: str, name: str, blob: bytes) -> int:
        boundary = "----vaelab" + secrets.token_hex(12)
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Origin": self._origin,
                   "X-Xsrftoken": self.xsrf}
        status, _, _ = await self.request("PUT", local_path(url, self.http_base), headers,
                                          (head, blob, f"\r\n--{boundary}--\r\n".encode()))
        return status


# ------------------------------------------------------------------------------------------------ /proc
def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1])
    except OSError:
        pass
    return out


def memory(pid: int | list[int]) -> dict[str, float | None]:
    """The process's resident memory now and its lifetime peak (VmHWM), MB; of several (the replicas), the sums
    (None when one of them is gone)."""
    each = [_status(p) for p in ([pid] if isinstance(pid, int) else pid)]
    out = {}
    for key, name in (("VmRSS", "rss_mb"), ("VmHWM", "hwm_mb")):
        have = [s[key] for s in each if key in s]
        out[name] = round(sum(have) / 1024, 1) if have and len(have) == len(each) else None
    return out


class Peaks:
    """The highest VmRSS of a process, or of several summed at each sample (the replicas), every ``every`` s, and of
    their descendants together (every second), sampled in a thread while an attack runs; ``section()`` returns the
    growth since the last section and starts another."""

    def __init__(self, pid: int | list[int], every: float = 0.05):
        self.pids, self.every = ([pid] if isinstance(pid, int) else list(pid)), every
        self.base = self.top = memory(self.pids)["rss_mb"] or 0.0
        self.overall, self.children = self.top, 0.0
        self.each = {p: _status(p).get("VmRSS", 0) / 1024 for p in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.every):
            now = {p: _status(p).get("VmRSS", 0) / 1024 for p in self.pids}
            for p, mb in now.items():
                self.each[p] = max(self.each[p], mb)
            rss = sum(now.values())
            self.top, self.overall = max(self.top, rss), max(self.overall, rss)
            n += 1
            if n % max(1, round(1 / self.every)) == 0:
                kids = sum(_status(c).get("VmRSS", 0) for p in self.pids for c in descendants(p)) / 1024
                self.children = max(self.children, kids)

    def section(self) -> float:
        growth = round(self.top - self.base, 1)
        self.base = self.top = memory(self.pids)["rss_mb"] or 0.0
        return growth

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(2)
        out = {"peak_mb": round(self.overall, 1), "children_peak_mb": round(self.children, 1)}
        if len(self.pids) > 1:
            out["peak_mb_by_replica"] = [round(self.each[p], 1) for p in self.pids]
        return out


def descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                raw = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(raw[raw.rindex(")") + 2:].split()[1]), []).append(int(d))
    out, todo = [], list(kids.get(pid, []))
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(kids.get(c, []))
    return out


def alive(pid) -> bool:
    """A live process (not a zombie its parent has yet to reap)."""
    try:
        return isinstance(pid, int) and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def processes_naming(text: str, *also: str) -> list[int]:
    """Live processes whose command line holds ``text`` (and each of ``also``)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().decode(errors="replace")
            zombie = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            continue
        if not zombie and text in argv and all(a in argv for a in also):
            out.append(int(d))
    return out


def kill_all(pids: list[int]) -> list[int]:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return pids


# ------------------------------------------------------------------------------------------------ the server
def serve_env() -> dict[str, str]:
    """deploy/serve.env's Streamlit settings (what deploy/replicas.sh serves a room with: no error details, ...)."""
    lines = (ROOT / "deploy" / "serve.env").read_text().splitlines()
    return dict(ln.strip().split("=", 1) for ln in lines if "=" in ln and not ln.lstrip().startswith("#"))


RUN_SH_FLAGS = ("--client.showErrorDetails", "none")     # what ./run.sh app adds to Streamlit's defaults


@dataclass
class Served(Target):
    """What the attacks reach: the load bench's ``Target`` (the app servers, their one runs folder, nginx in front
    of them or not), with a scratch folder for the attacks' files and the sticky-cookie values that place a tab."""
    scratch: Path | None = None
    sticky: list[str] = field(default_factory=list)     # a sticky-cookie value that pins a browser to replica i
                                                        # (class_attacks.sticky_values, from nginx's access log)

    def replica_at(self, upstream: str) -> int | None:
        """Which replica an access-log upstream (``127.0.0.1:PORT``) is."""
        return next((i for i, r in enumerate(self.replicas) if upstream.strip() == f"127.0.0.1:{r.port}"), None)

    def tab_kw(self, replica: int | None = None, agent: str = "") -> dict:
        """``Tab``/``Session`` arguments. Behind nginx: TLS trusting its certificate, the login, a User-Agent naming
        the tab in nginx's access log, and the sticky cookie pinning it to ``replica`` (None: nginx places it)."""
        if self.front is None:
            return {}
        cookies = {STICKY_COOKIE: self.sticky[replica % len(self.sticky)]} if replica is not None else {}
        headers = {"Authorization": nf.basic_auth(), **({"User-Agent": agent} if agent else {})}
        return {"ssl_context": self.tls, "headers": headers, "cookies": cookies}


@contextlib.contextmanager
def attack_server(report: dict, startup_timeout: float = 120.0, extra_env: dict | None = None, *,
                  replicas: int = 1, front: bool = False) -> Iterator[Served]:
    """The app served as ``./run.sh app`` serves it, every class limit at its default, with a fresh runs folder and a
    teacher's password; or (``front``) as a teacher serves a room: ``replicas`` servers as ``deploy/replicas.sh N``
    starts them (deploy/serve.env's settings, the one runs folder, ``VAE_LAB_MAX_JOBS`` the cores divided among them
    unless this environment sets it) behind deploy/nginx.conf made runnable by labkit/nginxfront.py (its TLS with a
    throwaway certificate, its login, its limits, its sticky cookie). On the way out nginx and the servers are
    stopped and any training process they started is killed; ``report`` gets what had to be killed
    (``training_pids_killed_at_exit``) and which variables were left out."""
    left_out = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("VAE_LAB_")}
    report["environment_left_out"] = sorted(left_out)
    with tempfile.TemporaryDirectory(prefix="vae-lab-attacks-") as tmp, contextlib.ExitStack() as stack:
        runs, scratch = Path(tmp) / "runs", Path(tmp) / "scratch"
        scratch.mkdir()
        env = {"VAE_LAB_RUNS_DIR": str(runs), "VAE_LAB_TEACHER_PASSWORD": TEACHER_PASSWORD,
               "VAE_LAB_HEARTBEAT_S": f"{HEARTBEAT_S:g}", **(extra_env or {})}
        if front:
            per = max(1, len(os.sched_getaffinity(0)) // replicas)       # deploy/replicas.sh: cores / N, at least 1
            env = {**serve_env(), "VAE_LAB_MAX_JOBS": left_out.get("VAE_LAB_MAX_JOBS", str(per)), **env}
        try:
            if front and nf.missing():
                raise SystemExit(f"--front nginx: {nf.missing()}")
            apps = [stack.enter_context(app_server(env=env, timeout=startup_timeout, extra_args=RUN_SH_FLAGS))
                    for _ in range(replicas)]
            shown = {k: "(set)" if k == "VAE_LAB_TEACHER_PASSWORD" else v for k, v in env.items()}
            served = Served(apps, runs, {k: v for k, v in shown.items() if k != "VAE_LAB_RUNS_DIR"}, scratch=scratch)
            if front:
                served.front = nf.render(Path(tmp) / "deploy", [a.port for a in apps])
                served.nginx = stack.enter_context(nf.serve(served.front))
                served.tls = served.front.tls_context()
            yield served
        finally:
            stack.close()                             # nginx, then the servers
            deadline = time.monotonic() + 15          # a stopped job saves its run, then exits by itself
            while processes_naming(str(runs)) and time.monotonic() < deadline:
                time.sleep(0.5)
            report["training_pids_killed_at_exit"] = kill_all(processes_naming(str(runs)))
            os.environ.update(left_out)
