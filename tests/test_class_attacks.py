"""bench/class_attacks.py's fast parts: its hostile files are what its rows say they are, its HTTP client reads a
refusal the server sends before the body, its leak search tells a path the tab itself sent from the server's own,
and its attack list covers every item of issue 20. The attacks themselves run against a server (the benchmark)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def bench(monkeypatch):
    """The benchmark's modules, imported as ``python bench/class_attacks.py`` imports them (bench/ on the path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    return lambda name: importlib.import_module(name)


def test_the_config_payloads_are_hostile_as_claimed(bench):
    files = bench("attackfiles")
    nested = files.nested_json()
    assert 60_000 < len(nested) <= 64 << 10                  # within the app's 64 KB, so the depth is what refuses it
    with pytest.raises(RecursionError):
        json.loads(nested)                                   # what a plain parser does with it
    digits = re.findall(rb"\d{1000,}", files.long_number_json())
    assert [len(d) for d in digits] == [5000]
    assert files.claimed_mb([4096] * 300) > 19_000 and files.claimed_mb([4096] * 8) > 400   # weights of 20 GB, 0.4 GB


def test_a_run_zip_carries_the_config_and_metrics_it_was_given(bench):
    files = bench("attackfiles")
    cfg = files.demo_config(hidden=[7, 7])
    cfg["data"]["name"] = "/etc/passwd"
    with zipfile.ZipFile(io.BytesIO(files.run_zip(cfg, status="failed"))) as zf:
        assert sorted(zf.namelist()) == ["run/config.json", "run/metrics.json", "run/model.safetensors"]
        got = json.loads(zf.read("run/config.json"))
        assert got["data"]["name"] == "/etc/passwd" and got["model"]["hidden"] == [7, 7]
        assert json.loads(zf.read("run/metrics.json"))["status"] == "failed"


def test_the_pixel_zip_is_over_the_apps_pixel_budget_in_images_within_its_per_image_cap(bench):
    from ui.uploads import DATA_LIMITS
    files = bench("attackfiles")
    with zipfile.ZipFile(io.BytesIO(files.pixel_zip(n=3, side=64))) as zf:
        sides = [Image.open(io.BytesIO(zf.read(n))).size for n in zf.namelist()]
    assert sides == [(64, 64)] * 3
    n, side = files.PIXEL_ZIP                                # what the attack uploads
    assert side * side <= DATA_LIMITS.max_image_pixels and n * side * side > DATA_LIMITS.max_total_pixels


def test_an_aged_file_tells_whether_it_was_read(bench, tmp_path):
    files = bench("attackfiles")
    if not files.atime_works(tmp_path):
        pytest.skip("this file system does not record reads (noatime)")
    f = tmp_path / "secret.npz"
    f.write_bytes(b"x" * 100)
    files.aged(f)
    f.stat()
    assert files.untouched(f)
    f.read_bytes()
    assert not files.untouched(f)


def test_http_reads_a_refusal_sent_before_the_body(bench):
    kit = bench("attackkit")

    async def refuse(reader, writer):                         # answers from the headers, reads no body, closes
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nSet-Cookie: a=b|c; Path=/\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await kit.http("127.0.0.1", port, "PUT", "/up", {}, (bytes(8 << 20),))

    # in a thread of its own: a browser test earlier in the session may leave an event loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        status, headers, _ = pool.submit(asyncio.run, main()).result()
    assert status == 413 and kit.set_cookie(headers, "a") == "b|c"


def test_a_path_the_tab_sent_shown_back_is_not_a_leak_but_the_servers_own_is(bench):
    kit = bench("attackkit")

    class FakeTab:
        sent = ["run=/tmp/vae-lab-attacks-x/scratch/canary"]

    needle = "/tmp/vae-lab-attacks-x"
    assert kit.Leaks.echo(FakeTab, "The link's run=/tmp/vae-lab-attacks-x/scratch… was ignored", needle)
    assert not kit.Leaks.echo(FakeTab, "cannot read /tmp/vae-lab-attacks-x/runs/.uploads/abc", needle)


def test_every_item_of_the_issue_has_an_attack_and_names_are_unique(bench):
    attacks = bench("class_attacks").ATTACKS
    names = [a.name for a in attacks]
    assert len(names) == len(set(names))
    items = {int(a.title.split(".", 1)[0]) for a in attacks}
    assert set(range(1, 13)) <= items, sorted(set(range(1, 13)) - items)
    assert all(asyncio.iscoroutinefunction(a.run) and a.timeout > 0 for a in attacks)
