"""Serving a class: what deploy/, run.sh's binding and requirements.txt promise (README, "Serving a class").

- requirements.txt installs what pyproject.toml declares (dependencies + the app extra), and admits the tested
  torch and torchvision; the container image bakes in deploy/serve.env's Streamlit settings.
- ./run.sh app listens on 127.0.0.1 unless VAE_LAB_ADDRESS (or a --server.address of its own) says otherwise;
  deploy/replicas.sh starts its replicas on 127.0.0.1 with serve.env and shares the cores' training jobs.
- The shipped deploy/nginx.conf passes ``nginx -t`` and, started in front of two app servers, asks for the login,
  passes the websocket upgrade over HTTP and TLS (as a browser at a host name the server does not know sends it),
  pins each browser to a replica with its cookie, logs, and answers 429 over its limits.
- The container recipe builds and serves where a container runtime works (else skipped, with the reason).

nginx and openssl missing: those tests are skipped with the reason, and fail on CI.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from labkit.appserver import ROOT, app_server, free_port
from labkit.nginxfront import (
    DEPLOY,
    PASSWORD,
    USER,
    basic_auth,
    check,
    get,
    missing,
    open_stream,
    render,
    serve,
    serve_env,
    status,
    stream_session,
)

TESTED = {"torch": "2.14.1", "torchvision": "0.29.1"}     # the versions on the development machine's disk


def require_nginx() -> None:
    """Skip with the reason where nginx cannot run; fail on CI, which installs it (.ci/run)."""
    if why := missing():
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


# --------------------------------------------------------------------------- requirements.txt, the image's settings

def _requirements_txt() -> list[Requirement]:
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    return [Requirement(ln) for ln in lines if ln and not ln.startswith(("#", "-"))]


def test_requirements_txt_installs_what_pyproject_declares():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["app"]]
    listed = _requirements_txt()
    assert sorted(map(str, listed)) == sorted(map(str, declared)), "requirements.txt and pyproject.toml differ"
    by_name = {r.name: r for r in listed}
    for name, version in TESTED.items():
        assert by_name[name].specifier.contains(Version(version)), f"{name} {version} is refused"
        assert by_name[name].specifier.contains(Version(version + "+cpu")), f"{name} {version}+cpu is refused"


def test_the_image_bakes_in_the_serving_settings():
    env = serve_env()
    assert env["STREAMLIT_CLIENT_SHOW_ERROR_DETAILS"] == "none"      # false would still show the traceback
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    baked = dict(re.findall(r"\b(STREAMLIT_[A-Z_]+)=(\S+)", text))
    assert baked == env, "deploy/Dockerfile's STREAMLIT_* settings and deploy/serve.env differ"


# --------------------------------------------------------------------------- run.sh's binding, replicas.sh

def _listening(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (Linux: /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == port:
                    raw = bytes.fromhex(addr)
                    if len(raw) == 4:
                        found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                    else:
                        words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                        found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


@pytest.fixture
def quiet_venv(tmp_path):
    """A VAE_LAB_VENV that is this interpreter, already 'set up' (run.sh's stamp matches), so run.sh installs
    nothing and runs the app as it would from its own .venv."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("reading listening sockets needs Linux's /proc/net/tcp")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    py.chmod(0o755)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes())
    for extras in ("app", "test"):
        (venv / f".vae-lab-{extras}.sha").write_text(stamp.hexdigest() + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("VAE_LAB_ADDRESS", "VAE_LAB_MAX_JOBS") and not k.startswith("STREAMLIT_")}
    return {**env, "VAE_LAB_VENV": str(venv), "VAE_LAB_RUNS_DIR": str(tmp_path / "runs")}


@contextlib.contextmanager
def _started(cmd: list[str], env: dict, ports: list[int], timeout: float = 90.0):
    """Start ``cmd`` in its own process group, wait until every port answers /_stcore/health, stop it on exit."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        for port in ports:
            while status(f"http://127.0.0.1:{port}/_stcore/health", auth=None) != 200:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, f"port {port} not healthy after {timeout:.0f} s"
                time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)      # replicas.sh's trap stops its servers; run.sh exec'd into one
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("how, expected", [
    ({}, "127.0.0.1"),
    ({"VAE_LAB_ADDRESS": "0.0.0.0"}, "0.0.0.0"),
    ({"args": ["--server.address", "0.0.0.0"]}, "0.0.0.0"),
])
def test_run_sh_app_listens_on_localhost_unless_told(quiet_venv, how, expected):
    port = free_port()
    env = {**quiet_venv, **{k: v for k, v in how.items() if k != "args"}}
    cmd = ["bash", str(ROOT / "run.sh"), "app", "--server.port", str(port), "--server.headless", "true",
           *how.get("args", [])]
    with _started(cmd, env, [port]):
        assert _listening(port) == {expected}


def _session_processes(sid: int, text: str) -> list[int]:
    """The processes of session ``sid`` whose command line contains ``text`` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if int(fields[3]) == sid and text in cmdline:
                found.append(int(stat.parent.name))
    return found


def _two_free_ports() -> int:
    for _ in range(50):
        first = free_port()
        with contextlib.suppress(OSError), socket.socket() as s:
            s.bind(("127.0.0.1", first + 1))
            return first
    raise RuntimeError("no two consecutive free ports")


def test_replicas_sh_serves_on_localhost_with_the_serving_settings_and_shares_the_cores(quiet_venv):
    first = _two_free_ports()
    cores = len(os.sched_getaffinity(0))
    with _started(["bash", str(DEPLOY / "replicas.sh"), "2", str(first)], quiet_venv, [first, first + 1]) as proc:
        for port in (first, first + 1):
            assert _listening(port) == {"127.0.0.1"}
        servers = _session_processes(proc.pid, "streamlit run")
        assert len(servers) == 2, servers
        for pid in servers:
            environ = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv)
            assert environ["VAE_LAB_MAX_JOBS"] == str(max(1, cores // 2))
            assert {k: environ.get(k) for k in serve_env()} == serve_env()
    assert proc.returncode is not None


# --------------------------------------------------------------------------- nginx in front of two replicas

def test_nginx_t_passes_on_the_shipped_config(tmp_path):
    require_nginx()
    front = render(tmp_path / "deploy", [free_port(), free_port()])
    result = check(front)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test is successful" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    """Two app servers sharing a runs folder, with the serving settings of deploy/serve.env."""
    require_nginx()
    env = {**serve_env(), "VAE_LAB_RUNS_DIR": str(tmp_path_factory.mktemp("runs")), "VAE_LAB_THREADS": "1"}
    with app_server(env=env) as one, app_server(env=env) as two:
        yield [one.port, two.port]


def test_nginx_asks_for_the_login_and_passes_websockets_over_http_and_tls(tmp_path, two_replicas):
    front = render(tmp_path / "deploy", two_replicas)
    http, https = f"http://127.0.0.1:{front.http}", f"https://localhost:{front.https}"
    with serve(front):
        code, headers, _ = get(f"{http}/", auth=None)
        assert code == 401 and headers.get("WWW-Authenticate") == 'Basic realm="VAE Lab"'
        assert status(f"{http}/", auth=basic_auth(USER, PASSWORD + "x")) == 401
        assert status(f"{http}/", auth=basic_auth("nobody", PASSWORD)) == 401
        code, headers, body = get(f"{http}/")
        assert code == 200 and b"<noscript>" in body, "the app's page, through nginx"
        assert re.fullmatch(r"vaelab_replica=\w+; Path=/; HttpOnly; SameSite=Lax", headers["Set-Cookie"])
        assert get(f"{http}/_stcore/health")[2] == b"ok"

        # the websocket upgrade, as a browser sends it from a name the app server does not know (nginx must pass
        # the Host with its port, or Streamlit refuses the Origin); refused without the login
        kinds = stream_session(front.http, host="vaelab.test")
        assert kinds[0] == "new_session" and kinds[-1] == "script_finished", kinds
        from websockets.exceptions import InvalidStatus
        with pytest.raises(InvalidStatus, match="401"):
            stream_session(front.http, host="vaelab.test", auth=None)

        # TLS: the page, the health check and the websocket, with the throwaway certificate checked for its name
        tls = front.tls_context()
        code, headers, body = get(f"{https}/", context=tls)
        assert code == 200 and b"<noscript>" in body
        assert headers["Set-Cookie"].endswith("; Secure"), "over TLS the replica cookie is Secure"
        assert status(f"{https}/", auth=None, context=tls) == 401
        kinds = stream_session(front.https, host="localhost", tls=tls)
        assert kinds[0] == "new_session" and kinds[-1] == "script_finished", kinds

        # sticky: a browser keeps its replica; new browsers spread over both
        upstream = {}
        for i in range(16):
            cookie = f"vaelab_replica=key{i}"
            for _ in range(2):
                get(f"{http}/_stcore/health", headers={"Cookie": cookie, "User-Agent": f"probe-{i}"})
        for line in front.log().splitlines():
            probe = re.search(r'\s(127\.0\.0\.1:\d+) "probe-(\d+)"$', line)
            if probe:
                upstream.setdefault(probe.group(2), set()).add(probe.group(1))
        assert len(upstream) == 16 and all(len(v) == 1 for v in upstream.values()), upstream
        assert set().union(*upstream.values()) == {f"127.0.0.1:{p}" for p in two_replicas}

    log = front.log()
    assert re.search(rf'^127\.0\.0\.1 {USER} \[.+\] "GET / HTTP/1\.1" 200 ', log, re.M), log[:2000]
    assert re.search(r'^127\.0\.0\.1 - \[.+\] "GET / HTTP/1\.1" 401 ', log, re.M)
    assert re.search(rf'^127\.0\.0\.1 {USER} \[.+\] "GET /_stcore/stream HTTP/1\.1" 101 ', log, re.M)
    assert PASSWORD not in log


def test_nginx_answers_429_over_its_limits(tmp_path, two_replicas):
    """The shipped limits with small numbers (a test cannot open a class's worth): the same zones, keys and
    locations, so what passes and what is refused shows the wiring; the numbers are argued in nginx.conf."""
    front = render(tmp_path / "deploy", two_replicas, replace={
        "rate=300r/s;": "rate=1r/m;", "burst=16000 nodelay;": "burst=5 nodelay;",
        "rate=10r/s;": "rate=1r/m;", "burst=400 nodelay;": "burst=3 nodelay;",
        "limit_conn vaelab_conn 1000;": "limit_conn vaelab_conn 2;"})
    http = f"http://127.0.0.1:{front.http}"
    from websockets.exceptions import InvalidStatus
    with serve(front):
        # requests: 1 + a burst of 5 within the minute, then 429 (the refused are counted before the login)
        codes = [status(f"{http}/_stcore/health") for _ in range(8)]
        assert codes == [200] * 6 + [429] * 2, codes
        # websocket opens (new sessions) have their own zone: 1 + a burst of 3, then 429
        for _ in range(4):
            with open_stream(front.http):
                pass
        with pytest.raises(InvalidStatus, match="429"):
            with open_stream(front.http):
                pass
    assert " 429 " in front.log()


def test_nginx_limits_connections_in_progress(tmp_path, two_replicas):
    """Two websockets open hold the per-address connection limit of 2: a third request is refused until one closes."""
    front = render(tmp_path / "deploy", two_replicas,
                   replace={"limit_conn vaelab_conn 1000;": "limit_conn vaelab_conn 2;"})
    with serve(front), open_stream(front.http), open_stream(front.http) as second:
        assert status(f"http://127.0.0.1:{front.http}/_stcore/health") == 429
        second.close()
        deadline = time.monotonic() + 20
        while status(f"http://127.0.0.1:{front.http}/_stcore/health") != 200:
            assert time.monotonic() < deadline, "a closed websocket still counts"
            time.sleep(0.2)


# --------------------------------------------------------------------------- the container recipe

def _engine() -> tuple[str | None, str]:
    """A container engine that answers (podman, then docker), or None and why not."""
    why = []
    for name in ("podman", "docker"):
        path = shutil.which(name)
        if not path:
            why.append(f"{name}: not installed")
            continue
        r = subprocess.run([path, "info"], capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            return path, ""
        why.append(f"{name}: {(r.stderr.strip().splitlines() or ['info failed'])[-1]}")
    return None, "; ".join(why)


def test_the_container_image_builds_and_serves(tmp_path):
    """deploy/Dockerfile built and started (the first build downloads torch: minutes, several GB; the image
    `localhost/vae-lab-test` is kept so the next build is quick). The base image is python:3.11-slim from Docker
    Hub, or VAE_LAB_CONTAINER_BASE (e.g. one made by deploy/base-image.sh on a machine without Docker Hub). The
    host's CA bundle goes in as the build secret `ca`, so a network that intercepts TLS works as the host does."""
    engine, why = _engine()
    if engine is None:
        pytest.skip(f"no container runtime works here ({why})")
    base = os.environ.get("VAE_LAB_CONTAINER_BASE", "docker.io/library/python:3.11-slim")
    if subprocess.run([engine, "image", "inspect", base], capture_output=True).returncode != 0:
        pulled = subprocess.run([engine, "pull", base], capture_output=True, text=True, timeout=600)
        if pulled.returncode != 0:
            pytest.skip(f"base image {base} cannot be pulled ({pulled.stderr.strip().splitlines()[-1]}); "
                        "set VAE_LAB_CONTAINER_BASE, e.g. to an image made by deploy/base-image.sh")
    image = "localhost/vae-lab-test"
    build = [engine, "build", "-f", str(DEPLOY / "Dockerfile"), "--build-arg", f"BASE={base}", "-t", image]
    if Path(engine).name == "podman":
        build += ["--format", "docker"]                  # podman's default (OCI) drops HEALTHCHECK
    if Path("/etc/ssl/certs/ca-certificates.crt").exists():
        build += ["--secret", "id=ca,src=/etc/ssl/certs/ca-certificates.crt"]
    built = subprocess.run([*build, str(ROOT)], capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    port, name = free_port(), f"vae-lab-test-{uuid.uuid4().hex[:8]}"
    run = subprocess.run([engine, "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8501", image],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    try:
        deadline = time.monotonic() + 180
        while status(f"http://127.0.0.1:{port}/_stcore/health", auth=None) != 200:
            logs = subprocess.run([engine, "logs", name], capture_output=True, text=True).stdout
            assert time.monotonic() < deadline, f"the container is not healthy: {logs[-3000:]}"
            time.sleep(1)
        kinds = stream_session(port, host="127.0.0.1", auth=None)
        assert kinds[0] == "new_session" and kinds[-1] == "script_finished", kinds
        inside = subprocess.run([engine, "exec", name, "sh", "-c", "id -u; env"], capture_output=True, text=True)
        assert inside.stdout.splitlines()[0] == "10001", "the app runs unprivileged"
        assert "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS=none" in inside.stdout
    finally:
        subprocess.run([engine, "rm", "-f", "-v", name], capture_output=True, timeout=120)   # and its /runs volume
