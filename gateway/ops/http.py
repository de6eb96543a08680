"""The gateway's HTTP server (aiohttp): `/metrics` in Prometheus' text format and the station page
(gateway.page). Read-only: every route is a GET.

On loopback by default. Listening anywhere else needs a token (the configuration refuses it
otherwise), compared in constant time; a request without it gets 401 and learns nothing. Scrapers
send it as `Authorization: Bearer`; a browser cannot, so a page opened once with `?token=…` gets a
cookie (HttpOnly, SameSite=Strict) derived from the token, and is sent on to the same address
without it, so the token stays out of the address bar and the history.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import page
from gateway.ops import metrics
from gateway.ops.version import VERSION

if TYPE_CHECKING:
    from gateway.config import HttpConfig
    from gateway.daemon import Gateway

log = structlog.get_logger("gateway.ops.http")


COOKIE = "shopfloor_page"


def cookie_of(token: str) -> str:
    """The cookie's value: it opens the page, and is not the token itself."""
    return hmac.new(token.encode(), b"station page", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def guard(token: str | None):
    """The middleware that lets in only requests that carry the token (none is needed without one)."""

    @web.middleware
    async def auth(request: web.Request, handler):
        if token is None:
            return await handler(request)
        if "token" in request.query and _same(request.query["token"], token):
            target = request.rel_url.with_query([(k, v) for k, v in request.query.items() if k != "token"])
            resp = web.HTTPSeeOther(str(target))
            resp.set_cookie(COOKIE, cookie_of(token), httponly=True, samesite="Strict", path="/")
            raise resp
        if _same(request.headers.get("Authorization", ""), f"Bearer {token}") or _same(request.cookies.get(COOKIE, ""), cookie_of(token)):
            return await handler(request)
        return web.Response(status=401, text="a token is required (Authorization: Bearer, or open the page once with ?token=)\n",
                            headers={"WWW-Authenticate": "Bearer"})

    return auth


def app(gw: Gateway, token: str | None) -> web.Application:
    reg, collector = metrics.registry(gw, VERSION)

    async def scrape(request: web.Request) -> web.Response:
        body = await metrics.exposition(reg, collector)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    a = web.Application(middlewares=[guard(token)], client_max_size=64 * 1024)
    a.router.add_get("/metrics", scrape)
    page.attach(a, gw)
    return a


async def serve(cfg: HttpConfig, gw: Gateway, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled. A port that cannot be had is retried: metrics are not worth a reading."""
    # Event streams end at shutdown (gateway.page); nothing else is long enough to wait for.
    runner = web.AppRunner(app(gw, cfg.token()), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    address = f"{cfg.host}:{cfg.port}"
    failing = None
    try:
        while True:
            try:
                await web.TCPSite(runner, cfg.host, cfg.port, reuse_address=True).start()
                break
            except OSError as exc:
                if failing is None:
                    log.error("http_unavailable", address=address, error=exc.strerror or str(exc), retry_seconds=RETRY)
                failing = exc
                await asyncio.sleep(RETRY)
        log.info("http_listening", address=address, metrics=f"http://{address}/metrics", page=f"http://{address}/")
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


RETRY = 10.0
