"""The trace view: a lot, material batch, work order or operator looked up in the capture log, as
tables and a chart. The answer is `gateway.journal.trace.query`'s (its shape is shared with the CLI's
`trace --json`); the log is opened read-only, in a thread, so a long query never holds up capture."""

from __future__ import annotations

import asyncio
import sqlite3
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.page import chart
from gateway.page.assets import LIVE, template
from gateway.page.labels import labels
from gateway.page.live import dumps
from gateway.page.tables import section, sections

try:
    from gateway.journal.trace import query
except ImportError:  # the journal's queries are not in this build yet
    query = None

KINDS = ("lot", "material", "order", "operator")
OPTS = ("gtin", "since", "until")


def ask(path: Path, kind: str, key: str, opts: dict[str, Any]) -> dict[str, Any] | None:
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return query(conn, kind, key, **opts)
    finally:
        conn.close()


def _opts(q: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in OPTS:
        if q.get(k):
            out[k] = float(q[k]) if k in ("since", "until") else q[k]
    return out


async def answer(request: web.Request) -> dict[str, Any] | None:
    """The trace answer for the request's kind and key; HTTP errors for what cannot be answered."""
    kind, key = request.query.get("kind", "lot"), request.query.get("key", "").strip()
    if kind not in KINDS or not key or len(key) > 64:
        raise web.HTTPBadRequest(text=f"kind must be one of {', '.join(KINDS)} and key 1 to 64 characters\n")
    if query is None:
        raise web.HTTPServiceUnavailable(text="trace is not available in this gateway\n")
    try:
        opts = _opts(request.query)
    except ValueError:
        raise web.HTTPBadRequest(text="since and until are unix seconds\n") from None
    path = request.app[LIVE].gw.cfg.buffer.path
    try:
        return await asyncio.to_thread(ask, path, kind, key, opts)
    except sqlite3.OperationalError as exc:
        raise web.HTTPServiceUnavailable(text=f"the capture log cannot be read: {exc}\n") from None


async def api(request: web.Request) -> web.Response:
    found = await answer(request)
    if found is None:
        return web.Response(status=404, body=dumps({"error": "nothing found"}), content_type="application/json")
    return web.Response(body=dumps(found), content_type="application/json")


async def view(request: web.Request) -> web.Response:
    lang = request.app[LIVE].gw.cfg.page.language
    words = labels(lang)
    kind, key = request.query.get("kind", "lot"), request.query.get("key", "").strip()
    body, status = "", 200
    if key:
        try:
            found = await answer(request)
            body = render(found, words, request.query.get("tag")) if found else f'<p class="nothing">{escape(words["nothing"])}</p>'
        except web.HTTPException as exc:
            body, status = f'<p class="problem">{escape(exc.text or exc.reason)}</p>', exc.status
    options = "".join(
        f'<option value="{k}"{" selected" if k == kind else ""}>{escape(words["k_" + k])}</option>' for k in KINDS
    )
    page = template("trace.html").substitute(
        {f"l_{k}": escape(v) for k, v in words.items()}, lang=lang, options=options, key=escape(key), body=body
    )
    return web.Response(text=page, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})


def render(found: dict[str, Any], words: dict[str, str], tag: str | None) -> str:
    """The answer as HTML: its tables, and the chart of `tag` ("device/tag"; default the first)."""
    out = sections(found, words)
    series = [t for t in (found.get("tags") or []) + (found.get("environment") or []) if t.get("series")]
    if series:
        chosen = next((t for t in series if f"{t.get('device')}/{t.get('tag')}" == tag), series[0])
        q = found.get("query") or {}
        links = " ".join(
            '<a href="/trace?%s"%s>%s</a>' % (
                escape(urlencode({"kind": q.get("kind", ""), "key": q.get("key", ""), "tag": f"{t.get('device')}/{t.get('tag')}"})),
                ' class="here"' if t is chosen else "",
                escape(f"{t.get('device')}/{t.get('tag')}"),
            )
            for t in series
        )
        out.insert(1, section("chart", words["tag"], f'<nav class="tags">{links}</nav>' + chart.svg(chosen, words)))
    return "\n".join(out)

