"""The daemon: one TaskGroup with the outbox writer, the publisher, a supervisor per device, the
control socket and the systemd watchdog. SIGTERM stops reading, flushes the outbox, waits (bounded)
for in-flight PUBACKs, and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from gateway import control, deadletter
from gateway.config import Config
from gateway.context import Change, ContextRefused
from gateway.errors import ConfigError, DriverFatal
from gateway.notify import notify, watchdog_interval
from gateway.outbox import Outbox
from gateway.pipeline import SCAN_KINDS, Pipeline
from gateway.publisher import Publisher, tls_context
from gateway.supervisor import Health, supervise

log = structlog.get_logger("gateway")
DRAIN_SECONDS = 5.0
ACTIONS = ("start", "update", "end", "login", "logout")


def change_from(req: dict[str, Any], source: str) -> Change:
    """Build a context change from a control request or an MES command; ValueError when malformed."""
    action = req.get("action")
    if action == "set":
        action = "start"
    if action == "clear":
        action = "end"
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)} (or set/clear), got {action!r}")
    ops = req.get("operators")
    if isinstance(ops, str):
        ops = [ops]
    if ops is not None and not (isinstance(ops, list) and all(isinstance(o, str) for o in ops)):
        raise ValueError("operators must be a list of strings")
    for key in ("work_order", "operation", "lot", "reason"):
        if req.get(key) is not None and not isinstance(req[key], str):
            raise ValueError(f"{key} must be a string")
    extra = req.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise ValueError("extra must be an object")
    return Change(
        action=action,
        source=source,
        work_order=req.get("work_order"),
        operation=req.get("operation"),
        lot=req.get("lot"),
        operators=tuple(ops) if ops is not None else None,
        extra=extra,
        reason=req.get("reason"),
    )


class Gateway:
    def __init__(self, cfg: Config, outbox: Outbox, saved: dict[str, dict]):
        self.cfg = cfg
        self.outbox = outbox
        self.pipeline = Pipeline(cfg, outbox, saved)
        self.publisher = Publisher(cfg, outbox, on_command=self.on_command)
        self.health = {d.name: Health(d.name, d.kind) for d in cfg.devices}
        self.started = time.time()
        self.commands = {"accepted": 0, "rejected": 0}

    async def change(self, station: str | None, ch: Change) -> dict[str, Any]:
        station = station or self.cfg.gateway.stations[0].name
        if station not in self.pipeline.contexts:
            return {"ok": False, "error": f"unknown station {station!r}"}
        try:
            ticket, ctx = self.pipeline.change(station, ch)
        except ContextRefused as exc:
            return {"ok": False, "error": str(exc), "code": exc.code}
        await self.outbox.committed(ticket)
        return {"ok": True, "context": ctx.to_json()}

    async def on_command(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        station, what = parts[-3], parts[-1]
        try:
            if what != "context":
                raise ValueError(f"unknown command topic {topic!r} (expected …/<station>/cmd/context)")
            req = orjson.loads(payload)
            if not isinstance(req, dict):
                raise ValueError("payload must be a JSON object")
            rsp = await self.change(station, change_from(req, "mes"))
        except (ValueError, orjson.JSONDecodeError) as exc:
            rsp = {"ok": False, "error": str(exc)}
        if rsp["ok"]:
            self.commands["accepted"] += 1
        else:
            self.commands["rejected"] += 1
            log.warning("command_rejected", topic=topic, error=rsp["error"], payload=payload[:200].decode("utf-8", "replace"))

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return {"ok": True, **await self.status()}
        if cmd == "contexts":
            return {"ok": True, "contexts": {s: c.to_json() for s, c in self.pipeline.contexts.items()}}
        if cmd == "context":
            try:
                ch = change_from(req, "cli")
            except ValueError as exc:
                return {"ok": False, "error": str(exc)}
            return await self.change(req.get("station"), ch)
        if cmd == "dead_letter":
            return await deadletter.handle(self.outbox, req)
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def summary(self) -> str:
        """One line for systemd's STATUS=: broker state and what waits in the buffer."""
        b = self.publisher
        broker = b.state + (f" ({b.reason})" if b.reason and b.state != "connected" else "")
        # One line: a newline would start another KEY=VALUE assignment in the notify datagram.
        return " ".join(f"capturing; broker {broker}; {self.outbox.stats.rows} rows buffered".split())

    async def status(self) -> dict[str, Any]:
        st = self.outbox.stats
        oldest = await self.outbox.oldest()
        return {
            "gateway_id": self.cfg.gateway.id,
            "running": True,
            "uptime": round(time.time() - self.started, 1),
            "devices": [h.to_json() for h in self.health.values()],
            "buffer": {
                "rows": st.rows,
                "bytes": st.bytes,
                "oldest_unsent_age": round(time.time() - oldest, 3) if oldest else None,
                "pending_commit": self.outbox.pending(),
                "dead_letter_rows": st.dead_rows,
                "dead_letter_bytes": st.dead_bytes,
            },
            "counters": {"read": self.pipeline.read, "buffered": st.counters["captured"], **st.counters},
            "broker": self.publisher.to_json(),
            "commands": self.commands,
            "contexts": {s: c.to_json() for s, c in self.pipeline.contexts.items()},
        }


def preflight(cfg: Config) -> None:
    """Fail at start, with exit 78, on settings that would only fail later (secrets, TLS files)."""
    problems = []
    try:
        cfg.mqtt.password()
    except OSError as exc:
        problems.append(f"mqtt.password: cannot read the password: {exc}")
    if cfg.mqtt.tls:
        try:
            tls_context(cfg)
        except (OSError, ValueError) as exc:
            problems.append(f"mqtt.tls: {exc}")
    problems += missing_parts(cfg)
    if problems:
        raise ConfigError(problems)


# The optional dependency each device kind needs, and the extra that installs it.
EXTRAS = {"opcua": "opcua", "scanner_evdev": "scanners", "scanner_serial": "scanners", "rfid_serial": "scanners"}


def missing_parts(cfg: Config) -> list[str]:
    """Build every enabled device once (constructors open nothing) so that a missing optional
    dependency stops the start with a clear message instead of failing a device later."""
    problems = []
    for i, d in enumerate(cfg.devices):
        if not d.enabled:
            continue
        try:
            d.build()
            if d.kind in SCAN_KINDS:
                import gateway.scan.rules  # noqa: F401 - the station's scan rules need biip
        except ImportError as exc:
            extra = EXTRAS.get(d.kind, "all")
            problems.append(f"devices[{i}] ({d.name}): kind {d.kind} needs {exc.name or exc}: pip install 'shopfloor-gateway[{extra}]'")
        except (ConfigError, DriverFatal) as exc:
            problems.append(f"devices[{i}] ({d.name}): {exc}")
    return problems


async def run(cfg: Config, stop: asyncio.Event | None = None, started=None) -> int:
    """Run until SIGTERM/SIGINT (or until `stop` is set, for embedding and tests).

    `started(gateway)` is called once everything runs.
    """
    preflight(cfg)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    async with Outbox(cfg.buffer) as outbox:
        gw = Gateway(cfg, outbox, await outbox.contexts())
        log.info(
            "gateway_started",
            gateway_id=cfg.gateway.id,
            devices=len(cfg.devices),
            buffered_rows=outbox.stats.rows,
            broker=f"{cfg.mqtt.host}:{cfg.mqtt.effective_port}",
        )
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(outbox.run())
            publisher = tg.create_task(gw.publisher.run())
            listening = asyncio.Event()
            ctl = tg.create_task(control.serve(cfg.control_socket, gw.handle, listening))
            devices = [
                tg.create_task(supervise(d, gw.pipeline, gw.health[d.name]), name=d.name)
                for d in cfg.devices
                if d.enabled
            ]
            wd = tg.create_task(_watchdog(gw.summary))
            await listening.wait()
            notify(f"READY=1\nSTATUS={gw.summary()}")
            if started is not None:
                started(gw)
            await stop.wait()
            notify("STOPPING=1")
            log.info("gateway_stopping")
            for t in devices:
                t.cancel()
            await asyncio.gather(*devices, return_exceptions=True)
            await outbox.flush()
            # Deliver what is buffered while the broker is there, within a bound; the rest stays on disk.
            try:
                async with asyncio.timeout(DRAIN_SECONDS):
                    if gw.publisher.state == "connected":
                        await outbox.empty.wait()
                    await gw.publisher.idle.wait()
            except TimeoutError:
                log.warning("shutdown_undelivered", inflight=gw.publisher.inflight, buffered_rows=outbox.stats.rows)
            await gw.publisher.goodbye()
            for t in (publisher, ctl, wd, writer):
                t.cancel()
    log.info("gateway_stopped", buffered_rows=outbox.stats.rows)
    return 0


async def _watchdog(summary: Callable[[], str]) -> None:
    """Ping systemd's watchdog from the event loop, so a loop that hangs gets the service restarted;
    each ping also refreshes the one-line STATUS shown by `systemctl status`."""
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notify(f"WATCHDOG=1\nSTATUS={summary()}")
        await asyncio.sleep(interval)
