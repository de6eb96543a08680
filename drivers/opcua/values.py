"""OPC UA values as JSON-able Python values, within a size budget.

Follows the non-reversible JSON encoding of OPC UA (Part 6): LocalizedText is its text, a
structure (an ExtensionObject decoded to an asyncua dataclass) is an object of its fields, an
ExtensionObject nobody could decode is `{"TypeId", "Body"}` with the body in hex,
NodeId and QualifiedName are their string forms (`ns=2;s=Press1`, `2:Name`), a StatusCode is
`{"Code", "Symbol"}`, an enumeration its name, a Variant its value, bytes hex, a DateTime ISO 8601.

Invariants:
- The result is made of None, bool, int, finite float, str, list and dict with str keys only.
- One value holds at most `max_string` characters of text in all its strings together (a ByteString
  counts its bytes) and at most `max_array` array elements and structure fields in all; nesting
  deeper than DEPTH is cut. Whatever is cut is said in the note `plain` returns, so the reading can
  say it is truncated. A NaN or infinity inside a structure or array becomes null, also noted.
  Names of enumerations and status codes are not counted as text: short, and each one sits in an
  element or field that is.
- Work is linear in the part of the value that is kept plus the length of the arrays looked at.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import uuid
from typing import Any

from asyncua import ua

DEPTH = 16


class _Budget:
    def __init__(self, max_string: int, max_array: int):
        self.text, self.items = max_string, max_array
        self.max_string, self.max_array = max_string, max_array
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def plain(value: Any, max_string: int, max_array: int) -> tuple[Any, str | None]:
    """(JSON-able value, None) or (value, what was truncated or replaced)."""
    budget = _Budget(max_string, max_array)
    out = _plain(value, budget, 0)
    return out, "; ".join(budget.notes[:3]) or None


def _plain(v: Any, b: _Budget, depth: int) -> Any:
    if depth > DEPTH:
        b.note(f"truncated: nested deeper than {DEPTH} levels")
        return None
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, enum.Enum):  # before int: an IntEnum is an int
        return v.name if v.name else _plain(v.value, b, depth + 1)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        b.note(f"{v} inside the value shown as null")
        return None
    if isinstance(v, str):
        return _text(v, b)
    if isinstance(v, bytes | bytearray):
        return _bytes(bytes(v), b)
    if isinstance(v, datetime.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=datetime.timezone.utc)).isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, list | tuple):
        return _array(v, b, depth)
    if isinstance(v, ua.LocalizedText):
        return _text(v.Text, b) if v.Text is not None else None
    if isinstance(v, ua.QualifiedName | ua.NodeId):  # ExpandedNodeId is a NodeId
        return _text(v.to_string(), b)
    if isinstance(v, ua.StatusCode):
        return {"Code": v.value, "Symbol": v.name}
    if isinstance(v, ua.Variant):
        return _plain(v.Value, b, depth + 1)
    if isinstance(v, ua.XmlElement):
        return _text(v.Value, b)
    if isinstance(v, ua.ExtensionObject):
        return {"TypeId": _text(v.TypeId.to_string(), b), "Body": None if v.Body is None else _bytes(bytes(v.Body), b)}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _fields(v, b, depth)
    b.note(f"{type(v).__name__} shown as text")
    return _text(str(v), b)


def _text(s: str, b: _Budget) -> str:
    if len(s) > b.text:
        b.note(f"truncated: text of {len(s)} characters cut to {b.text} (max_string {b.max_string})")
        s = s[: b.text]
    b.text -= len(s)
    # JSON cannot carry lone surrogates (text a server decoded with surrogateescape)
    return s.encode("utf-8", "replace").decode("utf-8")


def _bytes(data: bytes, b: _Budget) -> str:
    if len(data) > b.text:
        b.note(f"truncated: {len(data)} bytes cut to {b.text} (max_string {b.max_string})")
        data = data[: b.text]
    b.text -= len(data)
    return data.hex()


def _array(v: list | tuple, b: _Budget, depth: int) -> list:
    keep = min(len(v), b.items)
    if keep < len(v):
        b.note(f"truncated: array of {len(v)} elements cut to {keep} (max_array {b.max_array})")
    b.items -= keep
    return [_plain(x, b, depth + 1) for x in v[:keep]]


def _fields(v: Any, b: _Budget, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(v):
        if b.items <= 0:
            b.note(f"truncated: structure fields past max_array {b.max_array}")
            break
        b.items -= 1
        out[f.name] = _plain(getattr(v, f.name), b, depth + 1)
    return out
