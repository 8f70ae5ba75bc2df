"""One simulated browser tab: a websocket to ``/_stcore/stream`` and the HTTP GETs a tab makes.

Protocol notes (what the browser does, and what ``Session`` does):

- Connection: ``ws[s]://host/<base>/_stcore/stream`` with subprotocol ``streamlit``. The browser
  lists extra "subprotocols" after it: the XSRF token (only used to read auth cookies) and the
  previous session id (only when reconnecting). Neither is needed for a new anonymous session,
  and no cookie is needed. Frames are binary: one serialized ``ForwardMsg`` or ``BackMsg`` each.
  The server does not start the script on connect: the browser's first ``BackMsg`` is
  ``rerun_script`` (a ``ClientState``) with empty widget states, ``page_name`` taken from the URL
  path (``page_script_hash`` empty, since it does not know the hashes yet), the query string and
  ``context_info`` (timezone, locale, url, ...).
- Behind a proxy (deploy/nginx.conf): ``ssl_context`` for ``https://`` (e.g. one trusting a
  self-signed certificate), ``headers`` sent with every HTTP request and the websocket upgrade
  (e.g. ``Authorization: Basic ...``; a ``User-Agent`` among them replaces the default), and the
  cookies every answer sets (``cookies``: the proxy's sticky-replica cookie) sent back with every
  later request, as a browser keeps them.
- Each run starts with ``new_session`` (run id, the fragment ids of a fragment run, the page
  hash and the main script hash) and ends with ``script_finished``. A run interrupted by
  ``st.rerun()`` or a callback ends with FINISHED_EARLY_FOR_RERUN and the next run follows, so an
  action is complete at FINISHED_SUCCESSFULLY / FINISHED_FRAGMENT_RUN_SUCCESSFULLY /
  FINISHED_WITH_COMPILE_ERROR. A script exception is not a failed run: it is an ``exception``
  element in a successfully finished run (reported as status "exception").
- Every rerun sends all widget states (``tree.PageModel``); a button click adds
  ``trigger_value`` for that one message. A widget drawn by a fragment reruns only that
  fragment (``fragment_id`` in the ClientState).
- Pages (st.navigation): a sidebar link sends ``rerun_script`` with the target
  ``page_script_hash``, the query string reduced to the embed parameters, and only the states
  of widgets drawn by the main (router) script.
- Fragments with ``run_every``: the server only sends ``auto_rerun`` (interval, fragment_id); the
  browser then sends ``rerun_script`` with that ``fragment_id`` and ``is_auto_rerun`` on a timer.
  ``Session`` does not run those timers; it records them in ``auto_reruns`` and
  ``run_fragment(fragment_id)`` sends one such rerun.
- Media: the browser fetches every ``st.image`` URL (``/media/<id>.<ext>``) after the delta
  arrives. With ``fetch_media=True`` (default) each new image URL is fetched once per session,
  concurrently, over a new HTTP/1.1 connection (a browser keeps its connections alive), at most
  ``max_connections`` at once (default: no limit; a browser opens 6 per host), and
  ``media_seconds`` is send -> last image received. A download button's file is fetched when
  it is clicked.
- Not emulated: the HTML/JS bundle load, ``/_stcore/host-config`` beyond one preflight GET,
  app heartbeats (a tab only sends them when its host page asks), file uploads, a component's
  own JS (``set_component_state`` sends what its ``setStateValue`` would), stateful containers,
  chat input.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from .media import cookie_header, http_get, set_cookies
from .protocol import (
    FINISHED_NAMES,
    TERMINAL,
    TRIGGERS,
    RunResult,
    Widget,
    component_state,
    embed_only,
    encode_value,
    find_page,
    local_path,
    page_dict,
    plotly_selection,
)
from .tree import PageModel


class Session:
    """One simulated browser tab. Methods are coroutines; run one action at a time per session.

    ``async with Session(url, page="generate") as s: r = await s.click("New samples")``
    """

    def __init__(self, base_url: str, page: str = "", query: str = "", *, fetch_media: bool = True,
                 use_msg_cache: bool = True, timeout: float = 120.0, preflight: bool = True,
                 timezone: str = "UTC", locale: str = "en-US", ssl_context: ssl.SSLContext | None = None,
                 headers: dict[str, str] | None = None, max_connections: int | None = None,
                 cookies: dict[str, str] | None = None):
        u = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        self._origin = f"{u.scheme}://{u.netloc}"
        self.http_base = f"{self._origin}{u.path.rstrip('/')}"
        self.ws_url = f"{'wss' if u.scheme == 'https' else 'ws'}://{u.netloc}{u.path.rstrip('/')}/_stcore/stream"
        self._host, self._port = u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80)
        self._tls = u.scheme == "https"
        self.page = page.strip("/")
        self.query_string = query.lstrip("?")
        self.fetch_media, self.use_msg_cache, self.timeout, self.preflight = (
            fetch_media, use_msg_cache, timeout, preflight)
        self.timezone, self.locale = timezone, locale
        self.ssl_context, self.headers = ssl_context, dict(headers or {})
        self.cookies: dict[str, str] = dict(cookies or {})   # name -> value: given, and every answer's Set-Cookie
        self.preflight_status: list[int] = []    # the preflight GETs' HTTP status (0: no answer)
        self._connections = asyncio.Semaphore(max_connections) if max_connections else None

        self.session_id: str | None = None
        self.page_script_hash = ""
        self.pages: list[dict] = []              # from the navigation message: name, url_pathname, hash, ...
        self.auto_reruns: dict[str, float] = {}  # fragment_id -> interval (s), not run by this client
        self.connect_seconds: float | None = None
        self.total_messages = 0
        self.total_bytes = 0
        self.error: str | None = None            # why the websocket reader stopped, if it did
        self.open_result: RunResult | None = None
        self.model = PageModel()

        self._ws = None
        self._reader: asyncio.Task | None = None
        self._closed = asyncio.Event()
        self._fetched: set[str] = set()
        self._op: RunResult | None = None
        self._op_t0 = 0.0
        self._op_done: asyncio.Future | None = None
        self._media_tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ actions
    async def open(self) -> RunResult:
        """Connect and do the first script run (what loading the page URL does)."""
        t0 = time.perf_counter()
        if self.preflight:  # the browser pings these before it opens the websocket
            for path in ("/_stcore/health", "/_stcore/host-config"):
                self.preflight_status.append((await self._http_get(path))[0])
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

    async def __aenter__(self) -> Session:
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def click(self, label_or_key: str) -> RunResult:
        """Click a button (or a form's submit button, or a download button)."""
        w = self.model.find(label_or_key, TRIGGERS)
        if getattr(w.proto, "is_form_submitter", False) and w.form_id:
            self.model.wstate.update(self.model.form_pending.pop(w.form_id, {}))
        got = None
        if w.type == "download_button" and w.proto.url and self.fetch_media:
            # the browser downloads the file, then (by default) reruns
            got = await self._http_get(local_path(w.proto.url, self.http_base), absolute=True)
        if w.type == "download_button" and w.proto.ignore_rerun:
            r = RunResult(action=f"download {label_or_key}", status="ok", seconds=0.0)
        else:
            trig = WidgetState(id=w.id, trigger_value=True)
            r = await self._rerun(f"click {label_or_key}", extra=[trig], fragment_id=w.fragment_id)
        if got is not None:
            r.media_count += 1
            r.media_bytes += got[1]
            if got[0] != 200:
                r.exceptions.append(f"client: download GET -> {got[0]}")
        return r

    async def set_value(self, label_or_key: str, value: Any, field: str | None = None) -> RunResult:
        """Change a widget's value as a user would; reruns unless the widget is in a form.

        Values: slider a number or a (lo, hi) pair (select_slider: option labels or indexes);
        number_input a number; selectbox/radio an option label or an int index; multiselect /
        pills / segmented_control a list of labels or indexes; checkbox/toggle a bool; text
        widgets a str; date/time widgets ISO strings. ``field`` forces a WidgetState field
        ("int_value", "string_array_value", ...) for other widget types.
        """
        w = self.model.find(label_or_key)
        return await self._send_state(w, encode_value(w, value, field), f"set {label_or_key}")

    async def set_component_state(self, key: str, name: str, value: Any) -> RunResult:
        """What an ``st.components.v2`` component's JS ``setStateValue(name, value)`` sends."""
        w = self.model.find(key, {"bidi_component"})
        ws = component_state(w.id, self.model.wstate.get(w.id), name, value)
        return await self._send_state(w, ws, f"component {key}.{name}")

    async def select_points(self, key: str, points: list[dict]) -> RunResult:
        """A selection on ``st.plotly_chart(on_select=...)`` (``protocol.plotly_point`` makes a point).
        Like the frontend, nothing is sent when the selection equals the current one (status "unchanged")."""
        w = self.model.find(key, {"plotly_chart"})
        ws = plotly_selection(w.id, points)
        old = self.model.wstate.get(w.id)
        if old is not None and old.string_value == ws.string_value:
            return RunResult(action=f"select {key}", status="unchanged", seconds=0.0)
        return await self._send_state(w, ws, f"select {key}")

    async def switch_page(self, page: str) -> RunResult:
        """Go to another st.navigation page, like clicking its sidebar link.

        ``page`` is its url path ("generate"), its title ("Generate") or its script hash."""
        target = find_page(self.pages, page)
        m = self.model
        keep = [ws for wid, ws in m.wstate.items()
                if wid in m.winfo and m.winfo[wid].script_hash == m.main_script_hash]
        if target["page_script_hash"] != self.page_script_hash:
            self.query_string = embed_only(self.query_string)
        return await self._rerun(f"page {page}", states=keep, page_script_hash=target["page_script_hash"])

    async def rerun(self) -> RunResult:
        """Rerun the current page (the "Rerun" menu item / the R key)."""
        return await self._rerun("rerun")

    async def run_fragment(self, fragment_id: str | None = None) -> RunResult:
        """Send one fragment auto-rerun (what the browser's run_every timer sends)."""
        fid = fragment_id or next(iter(self.auto_reruns), None)
        if not fid:
            raise ValueError("no auto-rerun fragment known")
        return await self._rerun(f"fragment {fid}", fragment_id=fid, is_auto_rerun=True)

    async def close(self) -> None:
        for t in self._media_tasks:
            t.cancel()
        if self._ws is not None:
            try:
                await self._ws.close()
            except Exception:
                pass
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass

    # ------------------------------------------------------------------ what the page shows
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def widgets(self) -> dict[str, dict]:
        return self.model.widgets()

    @property
    def elements(self) -> list[dict]:
        return self.model.elements()

    def texts(self) -> list[str]:
        """The text of every text-like element (markdown, headings, captions, alerts, ...)."""
        return [e["text"] for e in self.elements if "text" in e]

    def images(self) -> list[tuple[str, str]]:
        """(url, caption) of every st.image picture, in page order."""
        return [(u, c) for e in self.elements if e["type"] == "imgs" for u, c in zip(e["urls"], e["captions"])]

    def element(self, key: str, kind: str | None = None) -> Any:
        """The proto of a drawn keyed element (widget, chart, component), by user key or label."""
        return self.model.find(key, None if kind is None else {kind}).proto

    def state(self, key: str) -> Any:
        """What this tab holds for a widget (None when it sends nothing for it)."""
        w = self.model.find(key)
        return self.widgets.get(w.id, {}).get("value")

    @property
    def current_page(self) -> str | None:
        for p in self.pages:
            if p["page_script_hash"] == self.page_script_hash:
                return p["url_pathname"]
        return None

    # ------------------------------------------------------------------ sending
    async def _send_state(self, w: Widget, ws: WidgetState, action: str) -> RunResult:
        if w.form_id:
            self.model.form_pending.setdefault(w.form_id, {})[w.id] = ws
            return RunResult(action=action, status="form_pending", seconds=0.0)
        self.model.wstate[w.id] = ws
        return await self._rerun(action, fragment_id=w.fragment_id)

    def _context_info(self, cs) -> None:
        ci = cs.context_info
        ci.timezone = self.timezone
        ci.timezone_offset = 0
        ci.locale = self.locale
        path = self.current_page if self.current_page is not None else self.page
        ci.url = f"{self.http_base}/{path}" + (f"?{self.query_string}" if self.query_string else "")
        ci.is_embedded = False
        ci.color_scheme = "light"

    async def _rerun(self, action: str, *, states: list[WidgetState] | None = None,
                     extra: list[WidgetState] = (), fragment_id: str = "", page_script_hash: str | None = None,
                     page_name: str = "", is_auto_rerun: bool = False) -> RunResult:
        if self._ws is None or self._closed.is_set():
            return RunResult(action=action, status="closed", exceptions=[f"client: {self.error}"] if self.error else [])
        if self._op is not None:
            raise RuntimeError("one action at a time per session")
        back = BackMsg()
        cs = back.rerun_script
        cs.query_string = self.query_string
        for ws in (list(self.model.wstate.values()) if states is None else states):
            cs.widget_states.widgets.add().CopyFrom(ws)
        for ws in extra:
            cs.widget_states.widgets.add().CopyFrom(ws)
        cs.page_script_hash = self.page_script_hash if page_script_hash is None else page_script_hash
        cs.page_name = page_name
        cs.fragment_id = fragment_id or ""
        cs.is_auto_rerun = is_auto_rerun
        if self.use_msg_cache:
            cs.cached_message_hashes[:] = list(self.model.cache)
        self._context_info(cs)

        op = RunResult(action=action)
        loop = asyncio.get_running_loop()
        self._op, self._op_done, self._media_tasks = op, loop.create_future(), []
        self._op_t0 = time.perf_counter()
        try:
            await self._ws.send(back.SerializeToString())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait([self._op_done, closed], timeout=self.timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if self._op_done.done():
                op.seconds = self._op_done.result() - self._op_t0
            else:
                op.status = "closed" if self._closed.is_set() else "timeout"
                if self.error:
                    op.exceptions.append(f"client: {self.error}")
            if self._media_tasks:
                await asyncio.wait(self._media_tasks, timeout=self.timeout)
        except websockets.ConnectionClosed as e:
            op.status = "closed"
            op.exceptions.append(f"client: websocket closed: {e}")
        finally:
            self._op = None
        op.page = self.current_page
        return op

    # ------------------------------------------------------------------ receiving
    async def _read_loop(self) -> None:
        try:
            async for raw in self._ws:
                if isinstance(raw, str):
                    continue
                self._on_message(raw)
        except websockets.ConnectionClosed as e:
            self.error = f"websocket closed: {e}"
        except Exception as e:  # a bug here must not pass silently
            self.error = f"{type(e).__name__}: {e}"
        finally:
            if self.error is None:
                self.error = "websocket closed"
            self._closed.set()

    def _on_message(self, raw: bytes) -> None:
        msg = ForwardMsg.FromString(raw)
        self.total_messages += 1
        self.total_bytes += len(raw)
        op, model = self._op, self.model
        if op is not None:
            op.messages += 1
            op.bytes += len(raw)
        kind = msg.WhichOneof("type")
        meta = msg.metadata
        if kind == "ref_hash":
            cached = model.cached(msg.ref_hash)
            if cached is None:  # cannot happen: the server only refers to hashes we listed
                if op is not None:
                    op.exceptions.append(f"client: unknown ref_hash {msg.ref_hash}")
                return
            if op is not None:
                op.cache_refs += 1
            msg, kind = cached, cached.WhichOneof("type")
        elif self.use_msg_cache and meta.cacheable and msg.hash:
            model.remember(msg)

        if kind == "delta":
            if op is not None and op.first_delta_seconds is None:
                op.first_delta_seconds = time.perf_counter() - self._op_t0
            model.apply_delta(msg.delta, meta, self._fetch if self.fetch_media else None)
        elif kind == "new_session":
            ns = msg.new_session
            model.begin_run(meta.run.script_run_id, meta.run.fragment_ids)
            model.main_script_hash = ns.main_script_hash
            if not model.run_fragments and ns.page_script_hash != self.page_script_hash:
                self.auto_reruns.clear()  # the browser drops its timers on a page change
            self.page_script_hash = ns.page_script_hash
            if ns.initialize.session_id:
                self.session_id = ns.initialize.session_id
            if ns.config.max_cached_message_age:
                model.max_cache_age = ns.config.max_cached_message_age
            if ns.app_pages and not self.pages:
                self.pages = [page_dict(p) for p in ns.app_pages]
            if op is not None:
                op.runs += 1
        elif kind == "navigation":
            self.pages = [page_dict(p) for p in msg.navigation.app_pages]
            if msg.navigation.page_script_hash:
                self.page_script_hash = msg.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            self.auto_reruns[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            self.auto_reruns.clear()
        elif kind == "page_not_found":
            if op is not None:
                op.page_not_found = msg.page_not_found.page_name or "(requested page)"
        elif kind == "session_event":
            ev = msg.session_event
            if ev.HasField("script_compilation_exception") and op is not None:
                e = ev.script_compilation_exception
                op.exceptions.append(f"{e.type}: {e.message}")
        elif kind == "script_finished":
            self._on_finished(msg.script_finished)

    def _on_finished(self, status: int) -> None:
        op = self._op
        if op is not None:
            op.finished.append(FINISHED_NAMES.get(status, str(status)))
        shown = self.model.finish(status)
        if (status in TERMINAL and op is not None and op.runs and self._op_done is not None
                and not self._op_done.done()):
            if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                op.status = "compile_error"
            else:
                op.exceptions.extend(shown)
                op.status = "exception" if shown else "ok"
            self._op_done.set_result(time.perf_counter())

    # ------------------------------------------------------------------ media (HTTP)
    def _fetch(self, url: str) -> None:
        if not url or url.startswith("data:") or url in self._fetched:
            return
        self._fetched.add(url)
        if url.startswith(("http://", "https://")):
            u = urlsplit(url)
            if u.hostname != self._host or (u.port or (443 if u.scheme == "https" else 80)) != self._port:
                return  # an external URL: not this server's load
        path = local_path(url, self.http_base)
        op, t0 = self._op, self._op_t0

        async def get() -> None:
            status, n = await self._http_get(path, absolute=True)
            if op is not None:
                op.media_count += 1
                op.media_bytes += n
                op.media_seconds = max(op.media_seconds or 0.0, time.perf_counter() - t0)
                if status != 200:
                    op.exceptions.append(f"client: GET {path} -> {status}")

        task = asyncio.create_task(get())
        if op is not None:
            self._media_tasks.append(task)

    async def _http_get(self, path: str, absolute: bool = False) -> tuple[int, int]:
        if not absolute:
            path = f"{urlsplit(self.http_base).path}{path}"
        if self._connections is None:
            return await self._get(path)
        async with self._connections:
            return await self._get(path)

    async def _get(self, path: str) -> tuple[int, int]:
        return await http_get(self._host, self._port, self._tls, path, context=self.ssl_context,
                              headers=self.headers, jar=self.cookies)
