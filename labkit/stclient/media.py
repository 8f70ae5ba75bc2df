"""The HTTP side of a tab: one GET per picture (``/media/<id>.png``), like the browser's."""
from __future__ import annotations

import asyncio


async def http_get(host: str, port: int, tls: bool, path: str) -> tuple[int, int]:
    """A minimal HTTP/1.1 GET on a new connection (``Connection: close``; a browser would keep its
    connections alive); returns (status, body bytes), (0, 0) when the connection failed."""
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=tls or None)
    except OSError:
        return 0, 0
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
                     f"Accept: */*\r\nAccept-Encoding: identity\r\n\r\n".encode())
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
    return status, len(body)
