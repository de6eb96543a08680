"""The gateway's HTTP server (aiohttp): `/metrics` in Prometheus' text format. Read-only.

On loopback by default. Listening anywhere else needs a bearer token (the configuration refuses it
otherwise), compared in constant time; a request without it gets 401 and learns nothing.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.ops import metrics
from gateway.ops.version import VERSION

if TYPE_CHECKING:
    from gateway.config import HttpConfig
    from gateway.daemon import Gateway

log = structlog.get_logger("gateway.ops.http")


def app(gw: Gateway, token: str | None) -> web.Application:
    reg, collector = metrics.registry(gw, VERSION)

    @web.middleware
    async def auth(request: web.Request, handler):
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return web.Response(status=401, text="a bearer token is required\n", headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    async def scrape(request: web.Request) -> web.Response:
        body = await metrics.exposition(reg, collector)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    a = web.Application(middlewares=[auth], client_max_size=64 * 1024)
    a.router.add_get("/metrics", scrape)
    return a


async def serve(cfg: HttpConfig, gw: Gateway, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled. A port that cannot be had is retried: metrics are not worth a reading."""
    runner = web.AppRunner(app(gw, cfg.token()), access_log=None, handle_signals=False)
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
        log.info("http_listening", address=address, metrics=f"http://{address}/metrics")
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


RETRY = 10.0
