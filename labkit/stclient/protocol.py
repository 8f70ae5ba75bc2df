"""Wire-level pieces of Streamlit's websocket protocol (1.67): run results, and the
``WidgetState`` a browser sends for each kind of widget.

Everything here is a pure function of protobufs and plain values; ``session.py`` does the
I/O and ``tree.py`` keeps the page the way the frontend does.

Widget states as the frontend (WidgetStateManager) stores and sends them:

- stock widgets: their proto default until the user changes them (``proto_state``), the value
  Python set when the proto's ``set_value`` is true; a change is ``encode_value``.
- buttons: ``trigger_value=True`` for the one message of the click.
- ``st.components.v2`` components (element ``bidi_component``): one ``json_value`` per
  instance, id = the element's id, holding the JSON text of the whole state object. The
  component's ``setStateValue(name, v)`` merges ``{name: v}`` into the current object and
  sends ``JSON.stringify`` of it (``component_state``). Events (``setTriggerValue``) go to a
  second id, ``<id>__events``, as ``json_trigger_value`` (not needed here).
- ``st.plotly_chart(on_select=...)``: ``string_value`` = the JSON text
  ``{"selection": {"points": [...], "point_indices": [...], "box": [], "lasso": []}}``; each
  point is plotly.js's event point with its keys in snake case (``curve_number``,
  ``point_number``, ``point_index``, ``x``, ``y``, ``customdata``, ...) and ``data``/``fullData``
  dropped (``plotly_selection``, ``plotly_point``).
"""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.NumberInput_pb2 import NumberInput as _NumberInputProto
from streamlit.proto.Slider_pb2 import Slider as _SliderProto
from streamlit.proto.WidgetStates_pb2 import WidgetState

FINISHED_NAMES = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "finished",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile_error",
    ForwardMsg.FINISHED_EARLY_FOR_RERUN: "early_for_rerun",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "fragment_finished",
}
COMPLETE = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}
TERMINAL = COMPLETE | {ForwardMsg.FINISHED_WITH_COMPILE_ERROR}

# Element types whose proto has an ``id`` and a value the frontend stores.
TRIGGERS = {"button", "download_button"}
VALUE_WIDGETS = {"checkbox", "slider", "number_input", "selectbox", "radio", "multiselect", "button_group",
                 "text_input", "text_area", "color_picker", "date_input", "date_time_input", "time_input",
                 "pagination"}
# Other widget-like element types: tracked (id, label); their state is only what the client sets.
OTHER_WIDGETS = {"feedback", "file_uploader", "camera_input", "audio_input", "chat_input", "menu_button",
                 "dataframe", "plotly_chart", "vega_lite_chart", "deck_gl_json_chart", "echarts_chart",
                 "component_instance", "bidi_component"}
TEXT_FIELDS = {"markdown": "body", "heading": "body", "alert": "body", "text": "body", "code": "code_text",
               "toast": "body", "json": "body"}
EMBED_PARAMS = ("embed", "embed_options")


def has(proto: Any, name: str) -> bool:
    try:
        return proto.HasField(name)
    except ValueError:  # a field without presence
        return True


def user_key(widget_id: str) -> str | None:
    """The user key of an element id ``$$ID-<hash>-<key>``, None when it has none."""
    if not widget_id.startswith("$$ID-"):
        return None
    key = widget_id.split("-", 2)[-1]
    return None if key == "None" else key


def state_value(ws: WidgetState | None) -> Any:
    """A WidgetState's value as a plain Python value (None when unset)."""
    if ws is None:
        return None
    kind = ws.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(ws, kind)
    if kind in ("double_array_value", "int_array_value", "string_array_value"):
        return list(v.data)
    if kind in ("bool_value", "int_value", "double_value", "string_value", "trigger_value", "json_value"):
        return v
    return str(v)


@dataclass
class RunResult:
    action: str
    seconds: float | None = None         # send -> the script_finished that ends the run chain
    status: str = "pending"              # ok | exception | compile_error | timeout | closed | form_pending
    finished: list[str] = field(default_factory=list)  # every script_finished seen, in order
    runs: int = 0                        # new_session messages (script runs) in the chain
    messages: int = 0                    # ForwardMsgs received during the action
    bytes: int = 0                       # their payload bytes (after permessage-deflate)
    cache_refs: int = 0                  # ref_hash messages answered from the client cache
    first_delta_seconds: float | None = None
    media_count: int = 0                 # image URLs fetched because of this action
    media_bytes: int = 0
    media_seconds: float | None = None   # send -> last image fetched (None: no image fetched)
    exceptions: list[str] = field(default_factory=list)  # shown by the script; "client: ..." = ours
    page_not_found: str | None = None
    page: str | None = None              # url path of the page shown after the action

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not self.exceptions

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Widget:
    id: str
    type: str
    proto: Any
    fragment_id: str
    script_hash: str
    form_id: str


def page_dict(p) -> dict:
    return {"page_name": p.page_name, "url_pathname": p.url_pathname, "page_script_hash": p.page_script_hash,
            "is_default": p.is_default, "section": p.section_header}


def find_page(pages: list[dict], page: str) -> dict:
    """A page of st.navigation by url path, title (any case) or script hash."""
    p = page.strip("/")
    for test in (lambda d: d["url_pathname"] == p, lambda d: d["page_name"] == page,
                 lambda d: d["page_name"].lower() == page.lower(), lambda d: d["page_script_hash"] == page):
        for d in pages:
            if test(d):
                return d
    raise KeyError(f"no page {page!r}; pages: {[d['url_pathname'] for d in pages]}")


def local_path(url: str, http_base: str) -> str:
    """The path (and query) to GET for a media URL as the frontend resolves it."""
    if url.startswith(("http://", "https://")):
        u = urlsplit(url)
        return u.path + (f"?{u.query}" if u.query else "")
    return url if url.startswith("/") else f"{urlsplit(http_base).path}/{url}"


def embed_only(query: str) -> str:
    return "&".join(kv for kv in query.split("&") if kv and kv.split("=", 1)[0] in EMBED_PARAMS)


# ---------------------------------------------------------------------- stock widgets
def proto_state(w: Widget, current: bool) -> WidgetState | None:
    """The state the frontend stores for a widget: its default (current=False), or the value
    Python set through session_state (current=True, when the proto's set_value is true)."""
    p, t = w.proto, w.type
    ws = WidgetState(id=w.id)
    if t == "checkbox":
        ws.bool_value = p.value if current else p.default
    elif t == "slider":
        if p.type == _SliderProto.SELECT_SLIDER:
            vals = list(p.raw_value) if current else [p.options[int(i)] for i in p.default]
            ws.string_array_value.data[:] = vals
        else:
            ws.double_array_value.data[:] = list(p.value if current else p.default)
    elif t == "number_input":
        name = "value" if current else "default"
        if not has(p, name):
            return ws
        v = getattr(p, name)
        if p.data_type == _NumberInputProto.INT:
            ws.int_value = int(v)
        else:
            ws.double_value = v
    elif t in ("selectbox", "radio"):
        if current:
            if has(p, "raw_value"):
                ws.string_value = p.raw_value
        elif has(p, "default") and 0 <= p.default < len(p.options):
            ws.string_value = p.options[p.default]
        else:
            return None
    elif t == "multiselect":
        ws.string_array_value.data[:] = list(p.raw_values) if current else [p.options[i] for i in p.default]
    elif t == "button_group":
        ws.string_array_value.data[:] = (list(p.raw_values) if current
                                         else [p.options[i].content for i in p.default])
    elif t in ("text_input", "text_area", "time_input"):
        name = "value" if current else "default"
        if has(p, name):
            ws.string_value = getattr(p, name)
        elif not current:
            return None
    elif t == "color_picker":
        ws.string_value = p.value if current else p.default
    elif t in ("date_input", "date_time_input"):
        ws.string_array_value.data[:] = list(p.value if current else p.default)
    elif t == "pagination":
        ws.int_value = p.value if current else p.default
    else:
        return None
    return ws


def _option(p_options: list[str], v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return p_options[v]
    return str(v)


def encode_value(w: Widget, value: Any, field: str | None = None) -> WidgetState:
    """The WidgetState a user's change of widget ``w`` to ``value`` sends (see Session.set_value)."""
    ws = WidgetState(id=w.id)
    p, t = w.proto, w.type
    many = list(value) if isinstance(value, (list, tuple)) else [value]
    if field is not None:
        if field.endswith("_array_value"):
            getattr(ws, field).data[:] = many
        else:
            setattr(ws, field, value)
        return ws
    if value is None and t in ("selectbox", "radio", "number_input", "text_input", "text_area", "time_input"):
        return ws  # cleared
    if t == "checkbox":
        ws.bool_value = bool(value)
    elif t == "slider":
        if p.type == _SliderProto.SELECT_SLIDER:
            ws.string_array_value.data[:] = [_option(list(p.options), v) for v in many]
        else:
            ws.double_array_value.data[:] = [float(v) for v in many]
    elif t == "number_input":
        if p.data_type == _NumberInputProto.INT:
            ws.int_value = int(value)
        else:
            ws.double_value = float(value)
    elif t in ("selectbox", "radio"):
        ws.string_value = _option(list(p.options), value)
    elif t == "multiselect":
        ws.string_array_value.data[:] = [_option(list(p.options), v) for v in many]
    elif t == "button_group":
        ws.string_array_value.data[:] = [_option([o.content for o in p.options], v) for v in many]
    elif t in ("text_input", "text_area", "color_picker", "time_input"):
        ws.string_value = str(value)
    elif t in ("date_input", "date_time_input"):
        ws.string_array_value.data[:] = [str(v) for v in many]
    elif t == "pagination":
        ws.int_value = int(value)
    else:
        raise ValueError(f"set_value does not know how to encode a {t}; pass field=")
    return ws


# ---------------------------------------------------------------------- components v2
def js_json(value: Any) -> str:
    """``JSON.stringify``'s text for plain values (no spaces; floats that are whole print as ints)."""
    def norm(v):
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        return v
    return json.dumps(norm(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def component_state(widget_id: str, prev: WidgetState | None, name: str, value: Any) -> WidgetState:
    """What a v2 component's ``setStateValue(name, value)`` sends: the element's state object
    (``prev``'s JSON, or ``{}``) with ``name`` set, as ``json_value`` under the element's id."""
    current: dict = {}
    if prev is not None and prev.WhichOneof("value") == "json_value":
        try:
            parsed = json.loads(prev.json_value)
            current = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            current = {}
    current = {**current, name: value}
    return WidgetState(id=widget_id, json_value=js_json(current))


def component_data(proto: Any) -> Any:
    """The ``data`` a v2 component instance was given (its JSON; None when it has none or is mixed)."""
    if proto.WhichOneof("data") == "json" and proto.json:
        return json.loads(proto.json)
    return None


# ---------------------------------------------------------------------- plotly selections
def _plotly_array(v: Any) -> list | None:
    """A trace attribute as a list: plain JSON lists pass; plotly's ``{"dtype", "bdata"}`` is decoded."""
    if isinstance(v, list):
        return v
    if isinstance(v, dict) and isinstance(v.get("bdata"), str) and isinstance(v.get("dtype"), str):
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]).newbyteorder("<"))
        if v.get("shape"):
            shape = v["shape"] if isinstance(v["shape"], list) else str(v["shape"]).split(",")
            arr = arr.reshape([int(s) for s in shape])
        return arr.tolist()
    return None


def plotly_traces(spec_json: str) -> list[dict]:
    """The figure's traces with ``x``, ``y`` and ``customdata`` as lists (None when absent)."""
    out = []
    for trace in json.loads(spec_json).get("data", []):
        t = dict(trace)
        for k in ("x", "y", "customdata"):
            t[k] = _plotly_array(trace.get(k))
        out.append(t)
    return out


def plotly_point(traces: list[dict], curve: int, index: int) -> dict:
    """The point plotly.js reports for a click on point ``index`` of trace ``curve``, after
    Streamlit's frontend dropped ``data``/``fullData`` and converted the keys to snake case."""
    t = traces[curve]
    pt: dict[str, Any] = {"curve_number": curve, "point_number": index, "point_index": index,
                          "x": t["x"][index], "y": t["y"][index]}
    if t.get("customdata") is not None:
        pt["customdata"] = t["customdata"][index]
    if t.get("legendgroup") is not None:  # read from the trace's input data
        pt["legendgroup"] = t["legendgroup"]
    return pt


def plotly_selection(widget_id: str, points: list[dict]) -> WidgetState:
    """The ``string_value`` the frontend sends for a points selection (a click with clickmode select)."""
    sel = {"selection": {"points": points,
                         "point_indices": list(dict.fromkeys(p["point_index"] for p in points)),
                         "box": [], "lasso": []}}
    return WidgetState(id=widget_id, string_value=js_json(sel))
