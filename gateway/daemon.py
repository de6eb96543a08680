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

import structlog

from gateway import commands, control
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


class Gateway:
    def __init__(self, cfg: Config, outbox: Outbox, saved: dict[str, dict], key: bytes | None = None):
        """`key`: the commands signing key, read by `run`. Built without it while the configuration
        names one (as the CLI does to change the buffer directly), the gateway takes no MQTT commands."""
        self.cfg = cfg
        self.outbox = outbox
        self.pipeline = Pipeline(cfg, outbox, saved)
        self.commands = _commands(cfg, self.change, key)
        self.publisher = Publisher(cfg, outbox, on_command=self.commands.on_message if self.commands.enabled else None)
        self.health = {d.name: Health(d.name, d.kind) for d in cfg.devices}
        self.started = time.time()

    async def change(self, station: str | None, ch: Change) -> dict[str, Any]:
        station = station or self.cfg.gateway.stations[0].name
        if station not in self.pipeline.contexts:
            return {"ok": False, "error": f"unknown station {station!r}", "code": "unknown_station"}
        try:
            ticket, ctx = self.pipeline.change(station, ch)
        except ContextRefused as exc:
            return {"ok": False, "error": str(exc), "code": exc.code}
        await self.outbox.committed(ticket)
        return {"ok": True, "context": ctx.to_json()}

    async def handle(self, req: dict[str, Any], peer: control.Peer) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return {"ok": True, **await self.status()}
        if cmd == "contexts":
            return {"ok": True, "contexts": {s: c.to_json() for s, c in self.pipeline.contexts.items()}}
        if cmd == "context":
            try:
                r = commands.control_request(req)
            except commands.Refused as exc:
                log.warning("command_rejected", source="cli", actor=peer.actor, reason=exc.reason, error=str(exc))
                return {"ok": False, "error": str(exc), "code": exc.reason}
            return await self.change(r.station, r.change("cli", peer.actor))
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
            },
            "counters": {"read": self.pipeline.read, "buffered": st.counters["captured"], **st.counters},
            "broker": self.publisher.to_json(),
            "commands": self.commands.to_json(),
            "contexts": {s: c.to_json() for s, c in self.pipeline.contexts.items()},
        }


def _commands(cfg: Config, apply, key: bytes | None) -> commands.Commands:
    g, c = cfg.gateway, cfg.commands
    signed = bool(c.key_file or c.key_credential)
    guard = commands.Guard(key, c.max_age) if key is not None else None
    base = f"{cfg.mqtt.topic_prefix}/{g.site}/{g.area}/{g.line}"
    return commands.Commands(base, g.id, [s.name for s in g.stations], apply, guard, c.enabled and (guard is not None or not signed))


def preflight(cfg: Config) -> None:
    """Fail at start, with exit 78, on settings that would only fail later (secrets, TLS files)."""
    problems = []
    try:
        cfg.mqtt.password()
    except OSError as exc:
        problems.append(f"mqtt.password: cannot read the password: {exc}")
    try:
        cfg.commands.key()
    except OSError as exc:
        problems.append(f"commands: cannot read the signing key: {exc}")
    except ConfigError as exc:
        problems += exc.problems
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
        gw = Gateway(cfg, outbox, await outbox.contexts(), cfg.commands.key())
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
