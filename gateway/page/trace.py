"""The trace view: a lot, material batch, work order or operator looked up in the capture log, as
tables and a chart. The answer is `gateway.journal.trace.query`'s (its shape is shared with the CLI's
`trace --json`), asked as the CLI and the control socket ask it: checked, on a read-only connection
of its own, in a thread, so that a long query never holds up capture."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from gateway.page import chart
from gateway.page.assets import LIVE, template
from gateway.page.labels import labels
from gateway.page.live import dumps
from gateway.page.tables import cell, section, sections


KINDS = ("lot", "material", "order", "operator")
OPTS = ("gtin", "since", "until")


def _opts(q: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in OPTS:
        if q.get(k):
            out[k] = float(q[k]) if k in ("since", "until") else q[k]
    return out


async def answer(request: web.Request) -> tuple[bytes, dict[str, float] | None]:
    """(the trace answer as JSON, `null` when nothing was found; the journal's time range) for the
    request's kind and key, through the same checks and read-only connection as `shopfloor-gateway
    trace`; HTTP errors otherwise."""
    kind, key = request.query.get("kind", "lot"), request.query.get("key", "").strip()
    if kind not in KINDS or not key:
        raise web.HTTPBadRequest(text=f"kind must be one of {', '.join(KINDS)}, and a key is needed\n")
    try:
        opts = _opts(request.query)
    except ValueError:
        raise web.HTTPBadRequest(text="since and until are unix seconds\n") from None
    rsp = await request.app[LIVE].gw.trace({"kind": kind, "key": key, "opts": opts})
    if not rsp["ok"]:
        error = web.HTTPBadRequest if rsp.get("code") == "invalid" else web.HTTPServiceUnavailable
        raise error(text=rsp["error"] + "\n")
    # The answer may come encoded already (from the trace worker): it is passed on as it is.
    return orjson.dumps(rsp["trace"]), rsp.get("journal")


async def api(request: web.Request) -> web.Response:
    body, span = await answer(request)
    if body == b"null":
        return web.Response(status=404, body=dumps({"error": "nothing found", "journal": span}), content_type="application/json")
    return web.Response(body=body, content_type="application/json")


async def view(request: web.Request) -> web.Response:
    lang = request.app[LIVE].gw.cfg.page.language
    words = labels(lang)
    kind, key = request.query.get("kind", "lot"), request.query.get("key", "").strip()
    body, status = "", 200
    if key:
        try:
            encoded, span = await answer(request)
            found = orjson.loads(encoded)
            body = render(found, words, request.query.get("tag")) if found else nothing(words, span)
        except web.HTTPException as exc:
            body, status = f'<p class="problem">{escape(exc.text or exc.reason)}</p>', exc.status
    options = "".join(
        f'<option value="{k}"{" selected" if k == kind else ""}>{escape(words["k_" + k])}</option>' for k in KINDS
    )
    page = template("trace.html").substitute(
        {f"l_{k}": escape(v) for k, v in words.items()}, lang=lang, options=options, key=escape(key), body=body
    )
    return web.Response(text=page, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})


def nothing(words: dict[str, str], span: dict[str, float] | None) -> str:
    held = f" ({words['journal']} {cell('at', span.get('from'))} – {cell('at', span.get('to'))})" if span else ""
    return f'<p class="nothing">{escape(words["nothing"] + held)}</p>'


def render(found: dict[str, Any], words: dict[str, str], tag: str | None) -> str:
    """The answer as HTML: its tables, and the chart of `tag` ("device/tag"; default the first)."""
    out = sections(found, words)
    series = [t for t in (found.get("tags") or []) + (found.get("environment") or []) if chart.drawable(t)]
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

