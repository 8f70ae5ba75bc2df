"""The HTTP side of a tab: one GET per picture (``/media/<id>.png``), like the browser's."""
from __future__ import annotations

import asyncio
import ssl


def set_cookies(jar: dict[str, str], values: list[str]) -> None:
    """Keep the name=value of each Set-Cookie header in ``jar`` (attributes ignored: one host, one path)."""
    for v in values:
        name, eq, value = v.split(";", 1)[0].strip().partition("=")
        if eq and name:
            jar[name] = value


def cookie_header(jar: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}


async def http_get(host: str, port: int, tls: bool, path: str, *, context: ssl.SSLContext | None = None,
                   headers: dict[str, str] | None = None, jar: dict[str, str] | None = None) -> tuple[int, int]:
    """A minimal HTTP/1.1 GET on a new connection (``Connection: close``; a browser would keep its
    connections alive); returns (status, body bytes), (0, 0) when the connection failed.
    ``context``: the TLS settings (default: the system's); ``headers``: sent as well (e.g. Authorization);
    ``jar``: cookies sent with the request and updated from the answer's Set-Cookie, as a browser keeps them."""
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=(context or True) if tls else None)
    except OSError:
        return 0, 0
    extra = "".join(f"{k}: {v}\r\n" for k, v in {**(headers or {}), **cookie_header(jar or {})}.items())
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
                     f"Accept: */*\r\nAccept-Encoding: identity\r\n{extra}\r\n".encode())
        await writer.drain()
        data = await reader.read()
    except OSError:
        return 0, 0
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    if jar is not None:
        lines = head.decode("latin-1").split("\r\n")[1:]
        set_cookies(jar, [ln.split(":", 1)[1] for ln in lines if ln.lower().startswith("set-cookie:")])
    return status, len(body)
