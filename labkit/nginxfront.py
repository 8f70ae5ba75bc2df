"""deploy/nginx.conf made runnable for a benchmark or a test, as labkit/appserver.py does for the app.

The shipped configuration is rendered into a folder of the caller's with free 127.0.0.1 ports, a throwaway
self-signed certificate (deploy/make-cert.sh) and a login (deploy/add-user.sh), and served by deploy/nginx.sh,
in front of app servers started by labkit/appserver.py with deploy/serve.env's settings::

    from labkit import nginxfront as nf                          # a bench script; a test: from labkit import nginxfront
    from labkit.appserver import app_server

    with app_server(env=nf.serve_env()) as app:
        front = nf.render(folder, [app.port])        # folder: a fresh one of the caller's
        with nf.serve(front):
            nf.get(f"https://localhost:{front.https}/", context=front.tls_context())   # (status, headers, body)
            nf.stream_session(front.http)            # the websocket through nginx: the first run's message kinds

Used by bench/proxy_bench.py, bench/load.py (``--front nginx``), tests/test_deploy.py and
tests/browser/test_replicas_browser.py.
"""
from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .appserver import ROOT, free_port

DEPLOY = ROOT / "deploy"
USER, PASSWORD = "class", "a class password"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def missing() -> str:
    """Why nginx cannot run here ("" when it can): nginx, or openssl for the certificate, is not installed."""
    gone = [name for name, path in (("nginx", nginx_binary()), ("openssl", shutil.which("openssl"))) if not path]
    return f"{' and '.join(gone)} not installed (apt-get install nginx openssl)" if gone else ""


def serve_env() -> dict[str, str]:
    """deploy/serve.env as a dict (KEY=VALUE lines; comments on their own lines)."""
    pairs = [line.split("=", 1) for line in (DEPLOY / "serve.env").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def basic_auth(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Front:
    """A rendered copy of deploy/ (nginx.conf, tls/, htpasswd, var/) and the ports nginx listens on."""
    dir: Path
    http: int
    https: int

    @property
    def cert(self) -> Path:
        return self.dir / "tls" / "cert.pem"

    def tls_context(self) -> ssl.SSLContext:
        """Trusts exactly the throwaway certificate, and checks that it names the host (localhost)."""
        return ssl.create_default_context(cafile=str(self.cert))

    def log(self) -> str:
        path = self.dir / "var" / "access.log"
        return path.read_text() if path.exists() else ""

    def error_log(self) -> str:
        path = self.dir / "var" / "error.log"
        return path.read_text() if path.exists() else ""

    def requests(self) -> list[dict]:
        """The access log's lines (deploy/nginx.conf's ``vaelab`` format) as dicts: addr, user, request, status,
        bytes, seconds, upstream (the replicas tried, ``-`` for none: refused by nginx itself), agent."""
        return [m.groupdict() for m in map(_LOG_LINE.match, self.log().splitlines()) if m]


_LOG_LINE = re.compile(r'^(?P<addr>\S+) (?P<user>\S+) \[[^\]]+\] "(?P<request>[^"]*)" (?P<status>\d+) (?P<bytes>\d+) '
                       r'(?P<seconds>\S+) (?P<upstream>.+?) "(?P<agent>[^"]*)"$')


def _script_env(folder: Path) -> dict[str, str]:
    return {**os.environ, "VAE_LAB_DEPLOY_DIR": str(folder), "VAE_LAB_NGINX": nginx_binary() or "nginx"}


def render(folder: Path, upstream_ports: list[int], *, replace: dict[str, str] | None = None) -> Front:
    """deploy/nginx.conf with its listen lines on free 127.0.0.1 ports, its upstream on ``upstream_ports`` and its
    error log at info (plus the caller's exact ``replace``ments), written into ``folder`` with a certificate and the
    login USER."""
    http, https = free_port(), free_port()
    text = (DEPLOY / "nginx.conf").read_text()
    subs = {"listen 8443 ssl;": f"listen 127.0.0.1:{https} ssl;",
            # info: a connection nginx closes says why (a client that timed out, a TLS error), which warn leaves out
            "error_log var/error.log warn;": "error_log var/error.log info;",
            "listen 8080;": f"listen 127.0.0.1:{http};",
            "        server 127.0.0.1:8501;\n        server 127.0.0.1:8502;\n":
                "".join(f"        server 127.0.0.1:{p};\n" for p in upstream_ports),
            **(replace or {})}
    for old, new in subs.items():
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has exactly one {old!r}"
        text = text.replace(old, new)
    if os.geteuid() == 0:
        # nginx started as root runs its workers as `nobody`, who may not reach a private temporary folder
        text = "user root;\n" + text
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nginx.conf").write_text(text)
    env = _script_env(folder)
    subprocess.run([str(DEPLOY / "make-cert.sh")], env=env, check=True, capture_output=True, timeout=60)
    subprocess.run([str(DEPLOY / "add-user.sh"), USER, "-"], input=PASSWORD + "\n", text=True, env=env,
                   check=True, capture_output=True, timeout=60)
    return Front(folder, http, https)


def check(front: Front) -> subprocess.CompletedProcess:
    """``deploy/nginx.sh -t`` on the rendered folder: nginx -t with that folder as prefix and configuration."""
    return subprocess.run([str(DEPLOY / "nginx.sh"), "-t"], env=_script_env(front.dir),
                          capture_output=True, text=True, timeout=60)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        return True
    return False


@contextlib.contextmanager
def serve(front: Front, timeout: float = 20.0) -> Iterator[subprocess.Popen]:
    """deploy/nginx.sh on the rendered folder, until its ports accept connections (waiting sends no request,
    which the limits would count); stopped on exit. An exception inside carries the error log's last lines (a note),
    and an error log with an ``[emerg]``, ``[alert]`` or ``[crit]`` line fails the block: nginx met something wrong
    even if every answer looked right."""
    proc = subprocess.Popen([str(DEPLOY / "nginx.sh")], env=_script_env(front.dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not (_accepts(front.http) and _accepts(front.https)):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"nginx did not start: {proc.stdout.read().decode()} {front.error_log()}")
            time.sleep(0.1)
        try:
            yield proc
        except BaseException as e:
            e.add_note("nginx's error log ends: " + " / ".join(front.error_log().splitlines()[-25:]))
            raise
        grave = [line for line in front.error_log().splitlines() if re.search(r"\[(emerg|alert|crit)\]", line)]
        if grave:
            raise AssertionError(f"nginx's error log has {len(grave)} grave line(s): {grave[:5]}")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def get(url: str, *, auth: str | None = basic_auth(), context: ssl.SSLContext | None = None,
        headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET on a new connection; status 0 when nothing answered."""
    req = urllib.request.Request(url, headers={**({"Authorization": auth} if auth else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except OSError:
        return 0, {}, b""


def status(url: str, **kw) -> int:
    return get(url, **kw)[0]


def _stream_args(port: int, host: str, tls: ssl.SSLContext | None, auth: str | None) -> tuple[str, dict]:
    """The websocket /_stcore/stream on 127.0.0.1:``port`` as a browser at ``http(s)://host:port`` opens it: Host
    and Origin name ``host`` and the port."""
    uri = f"{'wss' if tls else 'ws'}://{host}:{port}/_stcore/stream"
    return uri, dict(ssl=tls, server_hostname=host if tls else None, origin=f"{'https' if tls else 'http'}://{host}:{port}",
                     subprotocols=["streamlit"], additional_headers={"Authorization": auth} if auth else None,
                     proxy=None, compression=None, open_timeout=20, max_size=None)


@contextlib.contextmanager
def open_stream(port: int, *, host: str = "localhost", auth: str | None = basic_auth()):
    """The websocket over plain HTTP (``_stream_args``), held open by this thread; raises websockets' InvalidStatus
    when refused. Over TLS, use ``stream_session``: websockets' threaded client reads a TLS socket in one thread
    while another writes it, which OpenSSL does not allow on one connection."""
    from websockets.sync.client import connect

    uri, args = _stream_args(port, host, None, auth)
    with connect(uri, sock=socket.create_connection(("127.0.0.1", port), timeout=10), **args) as ws:
        yield ws


def stream_session(port: int, *, host: str = "localhost", tls: ssl.SSLContext | None = None,
                   auth: str | None = basic_auth()) -> list[str]:
    """Open the websocket (``_stream_args``), ask for the first script run, and return the kinds of the server's
    messages up to the run's end: the upgrade went through and messages flow both ways. One thread and asyncio's
    TLS (a memory buffer, never two threads on one connection), in a thread of its own; raises websockets'
    InvalidStatus when refused. A failure says how long after the start it came (nginx closes a request whose
    headers do not arrive within its client_header_timeout, 15 s)."""
    import asyncio
    import concurrent.futures

    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.asyncio.client import connect

    async def session() -> list[str]:
        uri, args = _stream_args(port, host, tls, auth)
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        async with connect(uri, sock=sock, **args) as ws:
            back = BackMsg()
            back.rerun_script.query_string = ""
            back.rerun_script.page_script_hash = ""
            await ws.send(back.SerializeToString())
            kinds: list[str] = []
            deadline = time.monotonic() + 60
            while "script_finished" not in kinds and time.monotonic() < deadline:
                msg = ForwardMsg()
                msg.ParseFromString(await asyncio.wait_for(ws.recv(), 60))
                kinds.append(msg.WhichOneof("type"))
            return kinds

    started = time.monotonic()
    try:
        # a thread of its own for the event loop: the caller's thread may run one already (Playwright's sync API does)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, session()).result()
    except Exception as e:
        e.add_note(f"the websocket to 127.0.0.1:{port} ({'TLS' if tls else 'plain'}, Host {host}) failed "
                   f"{time.monotonic() - started:.1f} s after it was opened")
        raise
