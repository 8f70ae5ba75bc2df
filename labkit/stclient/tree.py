"""The page as the frontend holds it: the element tree, the widgets' states and the
forward-message cache, updated from ForwardMsgs the way Streamlit's frontend does.

Rules kept from the frontend:

- Every widget drawn registers its value (its proto default, or the value it already has;
  ``set_value`` in the proto means Python set it through session_state and the proto value
  wins). After a complete run the states of widgets no longer in the tree are dropped.
- Stale nodes: a full run replaces the whole tree, a fragment run only its own part.
- Widgets inside a form keep their changes pending until the form's submit button is clicked.
- Cached messages: the server replaces a large (>= global.minCachedMessageSize, 10 kB)
  ``new_element`` delta by a ``ref_hash`` message only if the client listed that hash in
  ``ClientState.cached_message_hashes``; the browser expires entries not used for
  ``max_cached_message_age`` (2) complete runs.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Markdown_pb2 import Markdown as _MarkdownProto
from streamlit.proto.WidgetStates_pb2 import WidgetState

from .protocol import (
    COMPLETE,
    OTHER_WIDGETS,
    TEXT_FIELDS,
    TRIGGERS,
    VALUE_WIDGETS,
    Widget,
    proto_state,
    state_value,
    user_key,
)


@dataclass
class Node:
    kind: str            # element type or "block:<type>"
    proto: Any           # Element.<type> or Block
    run_id: str
    fragment_id: str
    script_hash: str


class PageModel:
    """One tab's view of the app: what is drawn and what each widget holds."""

    def __init__(self) -> None:
        self.tree: dict[tuple[int, ...], Node] = {}
        self.run_id = ""
        self.run_fragments: frozenset[str] = frozenset()
        self.main_script_hash = ""
        self.wstate: dict[str, WidgetState] = {}          # the frontend's widget states
        self.form_pending: dict[str, dict[str, WidgetState]] = {}
        self.winfo: dict[str, Widget] = {}
        self.cache: dict[str, list] = {}                  # hash -> [ForwardMsg, run count last used]
        self.run_count = 0
        self.max_cache_age = 2

    # ------------------------------------------------------------------ message cache
    def cached(self, ref_hash: str) -> ForwardMsg | None:
        entry = self.cache.get(ref_hash)
        if entry is None:
            return None
        entry[1] = self.run_count
        return entry[0]

    def remember(self, msg: ForwardMsg) -> None:
        self.cache[msg.hash] = [msg, self.run_count]

    # ------------------------------------------------------------------ deltas
    def begin_run(self, run_id: str, fragment_ids) -> None:
        self.run_id = run_id
        self.run_fragments = frozenset(fragment_ids)

    def apply_delta(self, delta, meta, on_image: Callable[[str], None] | None = None) -> None:
        dtype = delta.WhichOneof("type")
        if dtype not in ("new_element", "add_block"):
            return  # transient (spinner) messages
        path = tuple(meta.delta_path)
        if not path:
            return
        if dtype == "add_block":
            block = delta.add_block
            kind = "block:" + (block.WhichOneof("type") or "")
            old = self.tree.get(path)
            if old is not None and (old.kind != kind or (kind == "block:dialog" and old.proto.id != block.id)):
                self._drop_below(path)
            self.tree[path] = Node(kind, block, self.run_id, delta.fragment_id, meta.active_script_hash)
            return
        el = delta.new_element
        etype = el.WhichOneof("type")
        proto = getattr(el, etype) if etype else None
        old = self.tree.get(path)
        if old is not None and old.kind.startswith("block:"):
            self._drop_below(path)
        self.tree[path] = Node(etype or "", proto, self.run_id, delta.fragment_id, meta.active_script_hash)
        if etype in TRIGGERS or etype in VALUE_WIDGETS or etype in OTHER_WIDGETS:
            wid = getattr(proto, "id", "")
            if wid:
                self._register(Widget(wid, etype, proto, delta.fragment_id, meta.active_script_hash,
                                      getattr(proto, "form_id", "")))
        elif etype == "imgs" and on_image is not None:
            for img in proto.imgs:
                on_image(img.url)

    def _drop_below(self, path: tuple[int, ...]) -> None:
        n = len(path)
        for p in [p for p in self.tree if len(p) > n and p[:n] == path]:
            del self.tree[p]

    def _register(self, w: Widget) -> None:
        self.winfo[w.id] = w
        if w.type not in VALUE_WIDGETS:
            return
        if getattr(w.proto, "set_value", False):
            ws = proto_state(w, current=True)
            if ws is not None:
                self.wstate[w.id] = ws
        elif w.id not in self.wstate:
            ws = proto_state(w, current=False)
            if ws is not None:
                self.wstate[w.id] = ws

    def finish(self, status: int) -> list[str]:
        """A script_finished: on a complete run drop stale nodes and states, age the cache.
        Returns the script exceptions shown on the page."""
        if status in COMPLETE:
            self._drop_stale()
            active = {getattr(n.proto, "id", "") for n in self.tree.values() if not n.kind.startswith("block:")}
            for d in (self.wstate, self.winfo):
                for wid in [w for w in d if w not in active]:
                    del d[wid]
            for pending in self.form_pending.values():
                for wid in [w for w in pending if w not in active]:
                    del pending[wid]
            self.run_count += 1
            for h in [h for h, (_, used) in self.cache.items() if self.run_count - used > self.max_cache_age]:
                del self.cache[h]
        return [f"{n.proto.type}: {n.proto.message}" for n in self.ordered()
                if n.kind == "exception" and not n.proto.is_warning]

    def _drop_stale(self) -> None:
        running = self.run_fragments
        if not running:
            self.tree = {p: n for p, n in self.tree.items() if n.run_id == self.run_id}
            return
        replaced = {p for p, n in self.tree.items() if n.fragment_id in running and n.kind.startswith("block:")}

        def stale(p: tuple[int, ...], n: Node) -> bool:
            if n.run_id == self.run_id:
                return False
            if n.fragment_id in running:
                return True
            return any(p[:k] in replaced for k in range(1, len(p)))

        self.tree = {p: n for p, n in self.tree.items() if not stale(p, n)}

    # ------------------------------------------------------------------ lookups
    def ordered(self) -> list[Node]:
        return [n for _, n in sorted(self.tree.items())]

    def find(self, label_or_key: str, types: set[str] | None = None) -> Widget:
        """A drawn widget by user key, then label, then id (first in page order)."""
        ws = [self.winfo[getattr(n.proto, "id", "")] for n in self.ordered()
              if getattr(n.proto, "id", "") in self.winfo]
        if types is not None:
            ws = [w for w in ws if w.type in types]
        for test in (lambda w: user_key(w.id) == label_or_key,
                     lambda w: getattr(w.proto, "label", None) == label_or_key,
                     lambda w: w.id == label_or_key):
            hits = [w for w in ws if test(w)]
            if hits:
                return hits[0]
        names = sorted({getattr(w.proto, "label", "") or user_key(w.id) or w.id for w in ws})
        raise KeyError(f"no widget {label_or_key!r}; widgets: {names}")

    def widgets(self) -> dict[str, dict]:
        """The widgets of the current tree, keyed by widget id."""
        out = {}
        for node in self.ordered():
            w = self.winfo.get(getattr(node.proto, "id", None) or "")
            if w is None or w.id in out:
                continue
            p = w.proto
            options = None
            if w.type == "button_group":
                options = [o.content for o in p.options]
            elif hasattr(p, "options") and len(getattr(p, "options", [])):
                options = list(p.options)
            out[w.id] = {"id": w.id, "key": user_key(w.id), "label": getattr(p, "label", ""), "type": w.type,
                         "value": state_value(self.wstate.get(w.id)), "options": options,
                         "form_id": w.form_id or None, "fragment_id": w.fragment_id or None,
                         "main_script": w.script_hash == self.main_script_hash}
        return out

    def elements(self) -> list[dict]:
        """Simple descriptions of the drawn elements, in page order."""
        out = []
        for path, node in sorted(self.tree.items()):
            if node.kind.startswith("block:"):
                continue
            d: dict[str, Any] = {"type": node.kind, "path": list(path)}
            p = node.proto
            if node.kind in TEXT_FIELDS:
                d["text"] = getattr(p, TEXT_FIELDS[node.kind])
                if node.kind == "markdown" and p.element_type == _MarkdownProto.CAPTION:
                    d["type"] = "caption"
            elif node.kind == "imgs":
                d["urls"] = [i.url for i in p.imgs]
                d["captions"] = [i.caption for i in p.imgs]
            elif node.kind == "exception":
                d["text"] = f"{p.type}: {p.message}"
            elif node.kind == "metric":
                d["text"] = f"{p.label}: {p.body}"
            if hasattr(p, "label") and "text" not in d:
                d["label"] = p.label
            out.append(d)
        return out
