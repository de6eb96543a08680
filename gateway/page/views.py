"""The station page's routes on the gateway's HTTP server. All read-only (GET and HEAD)."""

from __future__ import annotations

import asyncio
import html
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.page import trace
from gateway.page.assets import LIVE, STATIC, script_json, template
from gateway.page.hub import frame
from gateway.page.labels import labels, reasons
from gateway.page.live import Live, dumps

if TYPE_CHECKING:
    from gateway.daemon import Gateway


def attach(app: web.Application, gw: Gateway) -> None:
    """Add the page to `app`, and its listener to the gateway's pipeline while `app` runs."""
    live = Live(gw)
    app[LIVE] = live
    app.cleanup_ctx.append(_running)
    app.on_shutdown.append(_hang_up)
    r = app.router
    r.add_get("/", home)
    r.add_get("/station/{station}", page)
    r.add_get("/api/state", state)
    r.add_get("/api/events", events, allow_head=False)  # a stream has no end to answer a HEAD with
    r.add_get("/trace", trace.view)
    r.add_get("/api/trace", trace.api)
    r.add_static("/static/", STATIC)


async def _running(app: web.Application):
    live = app[LIVE]
    live.gw.pipeline.listeners.append(live.on_record)
    ticker = asyncio.create_task(live.tick(), name="page-tick")
    yield
    ticker.cancel()
    live.gw.pipeline.listeners.remove(live.on_record)


async def _hang_up(app: web.Application) -> None:
    """End every event stream, so that stopping the server does not wait for browsers."""
    for c in list(app[LIVE].hub.clients):
        c.drop()


def _station(request: web.Request) -> str:
    live = request.app[LIVE]
    name = request.match_info.get("station") or request.query.get("station") or live.stations()[0]
    if name not in live.stations():
        raise web.HTTPNotFound(text=f"no station {name!r} here\n")
    return name


async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"/station/{request.app[LIVE].stations()[0]}")


async def page(request: web.Request) -> web.Response:
    live = request.app[LIVE]
    station = _station(request)
    lang = live.gw.cfg.page.language
    words = labels(lang)
    others = live.stations() if len(live.stations()) > 1 else []
    nav = "".join(f'<a href="/station/{html.escape(s)}"{" class=here" if s == station else ""}>{html.escape(s)}</a>' for s in others)
    body = template("station.html").substitute(
        {f"l_{k}": html.escape(v) for k, v in words.items()},
        lang=lang,
        station=html.escape(station),
        description=html.escape(live.description(station) or ""),
        nav=nav,
        words=script_json({"labels": words, "reasons": reasons(lang)}),
    )
    return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-store"})


async def state(request: web.Request) -> web.Response:
    snap = await request.app[LIVE].snapshot(_station(request))
    return web.Response(body=dumps(snap), content_type="application/json")


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: a snapshot first, then scans, context, alarms and health as they come."""
    live = request.app[LIVE]
    station = _station(request)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await resp.prepare(request)
    # Joined before the snapshot is taken: nothing falls between (a scan in both is shown once).
    client = live.hub.join(station)
    try:
        await resp.write(b"retry: 1000\n\n" + frame("snapshot", dumps(await live.snapshot(station))))
        while (f := await client.next()) is not None:
            await resp.write(f)
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        live.hub.leave(client)
    return resp
