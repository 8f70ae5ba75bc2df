"""JSON that may come from a stranger, parsed within limits checked before anything large is built.

A 2 KB ``config.json`` nested ten thousand levels deep, or holding a 5,000-digit integer, made Python's own parser
raise ``RecursionError`` or spend its time converting; ``load_json`` refuses both in one line, and a document over
its byte limit before reading it as text.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 64          # a run's files nest 4-5 levels; anything deeper is refused before parsing
MAX_NUMBER_CHARS = 64        # longest number literal accepted (a 5,000-digit integer is refused, not converted)


class JSONError(ValueError):
    """A JSON document was refused; the message is one line."""


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects (strings are skipped whole, so brackets inside them do not count)."""
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _number(kind):
    def parse(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            raise JSONError(f"a number of {len(text):,} characters (at most {MAX_NUMBER_CHARS} are accepted)")
        return kind(text)
    return parse


def load_json(blob: bytes | str, source: str, *, max_bytes: int = 64 << 20) -> Any:
    """Parse JSON that may come from a stranger, within limits checked before anything large is built: at most
    ``max_bytes``, nesting at most ``MAX_JSON_DEPTH`` deep, numbers at most ``MAX_NUMBER_CHARS`` long. Raises
    ``JSONError`` with one line saying what is wrong."""
    if len(blob) > max_bytes:
        raise JSONError(f"{source}: {len(blob):,} bytes, over the {max_bytes:,}-byte limit")
    try:
        text = blob.decode("utf-8") if isinstance(blob, bytes) else blob
    except UnicodeDecodeError:
        raise JSONError(f"{source}: not UTF-8 text") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise JSONError(f"{source}: nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_int=_number(int), parse_float=_number(float))
    except JSONError as e:
        raise JSONError(f"{source}: {e}") from None
    except json.JSONDecodeError as e:
        raise JSONError(f"{source}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except (ValueError, RecursionError) as e:
        raise JSONError(f"{source}: not valid JSON ({type(e).__name__})") from None
