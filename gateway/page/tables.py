"""A trace answer as HTML tables (the shape of `gateway.journal.trace.query`'s answer)."""

from __future__ import annotations

import time
from html import escape
from typing import Any

TIMES = frozenset({"at", "from", "to", "started_at", "ended_at", "login_at", "logout_at", "t"})


def cell(key: str, v: Any) -> str:
    if v is None:
        return ""
    if key in TIMES and isinstance(v, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ", ".join(cell(key, x) for x in v)
    if isinstance(v, dict):
        return " ".join(f"{k} {cell(k, x)}" for k, x in v.items() if x is not None)
    return str(v)


def table(columns: list[tuple[str, str]], rows: list[dict[str, Any]], status: bool = False) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in columns)
    body = []
    for r in rows:
        cls = f' class="s-{escape(str(r.get("status")))}"' if status and r.get("status") else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{escape(cell(k, r.get(k)))}</td>" for k, _ in columns) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(name: str, title: str, inner: str) -> str:
    return f'<section class="{escape(name)}"><h2>{escape(title)}</h2>{inner}</section>'


def _cols(words: dict[str, str], *keys: str) -> list[tuple[str, str]]:
    return [(k, words.get(k, k.replace("_", " "))) for k in keys]


def _excursions(tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**t, "out_of_limits": [f"{cell('at', s['from'])} – {cell('at', s['to'])}" for s in t.get("out_of_limits") or []]} for t in tags]


def sections(found: dict[str, Any], w: dict[str, str]) -> list[str]:
    """One section per part of the answer that has rows, in the order of the answer's shape."""
    out = []
    j = found.get("journal") or {}
    out.append(section("journal", w["journal"], f"<p>{escape(cell('at', j.get('from')))} – {escape(cell('at', j.get('to')))}</p>"))
    parts = [
        ("contexts", w["contexts"], _cols(w, "station", "work_order", "operation", "lot", "started_at", "ended_at"), False),
        ("operators", w["operators"], _cols(w, "operator", "station", "login_at", "logout_at"), False),
        ("sessions", w["sessions"], _cols(w, "station", "login_at", "logout_at"), False),
        ("materials", w["materials"], _cols(w, "at", "station", "device", "status", "reason_code", "message", "gtin", "batch", "serial", "expiry"), True),
        ("consumed", w["consumed"], _cols(w, "at", "station", "device", "work_order", "operation", "lot", "gtin", "batch", "serial", "status"), True),
        ("tags", w["tags"], _cols(w, "station", "device", "tag", "unit", "count", "min", "max", "mean", "limits", "out_of_limits"), False),
        ("alarms", w["alarm_log"], _cols(w, "at", "device", "tag", "alarm", "state", "severity", "limit", "value"), False),
        ("environment", w["environment"], _cols(w, "station", "device", "tag", "unit", "count", "min", "max", "mean", "limits", "out_of_limits"), False),
    ]
    for key, title, cols, status in parts:
        rows = found.get(key) or []
        if key in ("tags", "environment"):
            rows = _excursions(rows)
        if rows:
            out.append(section(key, title, table(cols, rows, status)))
    c = found.get("completeness")
    if c:
        counts = {k: v for k, v in c.items() if k != "gaps"}
        inner = table([(k, k.replace("_", " ")) for k in counts], [counts])
        if c.get("gaps"):
            inner += table([(k, k.replace("_", " ")) for k in ("first_seq", "last_seq", "count", "policy", "at")], c["gaps"])
        out.append(section("completeness", w["completeness"], inner))
    return out
