"""The daemon: one TaskGroup with the capture log's writer, one task per northbound sink, a
supervisor per device, the control socket and the systemd watchdog. SIGTERM stops reading, commits
what was read, waits (bounded) for the sinks to deliver it, and exits 0; the whole stop ends within STOP_SECONDS, and a second SIGTERM
ends the process at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gateway import config as config_mod
from gateway.capture import deadletter
from gateway.capture.log import Log
from gateway.capture.pipeline import Pipeline
from gateway.capture.supervisor import Health, supervise
from gateway.config import Config
from gateway.errors import BufferError, ConfigError, Traced, describe
from gateway.northbound.mqtt import JsonSink
from gateway.northbound.registry import JsonSinkConfig
from gateway.ops import control, logs, trace
from gateway.ops import reload as reload_mod
from gateway.ops.notify import notify, watchdog_interval
from gateway.ops.preflight import missing_parts, preflight
from gateway.ops.version import VERSION
from gateway.station import commands
from gateway.station.context import Change, ContextRefused
from gateway.ticker import every

log = structlog.get_logger("gateway")
DRAIN_SECONDS = 5.0


class Gateway:
    def __init__(self, cfg: Config, box: Log, saved: dict[str, dict], key: bytes | None = None):
        """`key`: the commands signing key, read by `run`. Built without it while the configuration
        names one (as the CLI does to change the buffer directly), the gateway takes no MQTT commands."""
        self.cfg = cfg
        self.log = box
        self.pipeline = Pipeline(cfg, box, saved)
        self.commands = _commands(cfg, self.change, key)
        on_command = self.commands.on_message if self.commands.enabled else None
        self.sinks: list[Any] = []
        self.publisher: JsonSink | None = None  # the first JSON sink: it carries the MES commands
        for s in cfg.northbound:
            if isinstance(s, JsonSinkConfig) and self.publisher is None:
                self.publisher = s.build(cfg, on_command)
                self.sinks.append(self.publisher)
            else:
                self.sinks.append(s.build(cfg))
        self.health = {d.name: Health(d.name, d.kind) for d in cfg.devices}
        self.started = time.time()
        self.source: Path | None = None  # the configuration file, for reloads
        self.devices: dict[str, asyncio.Task] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._reloading = asyncio.Lock()

    def start_device(self, d: Any) -> None:
        assert self._tg is not None
        self.health[d.name] = Health(d.name, d.kind)
        self.devices[d.name] = self._tg.create_task(supervise(d, self.pipeline, self.health[d.name]), name=d.name)

    async def reload(self) -> dict[str, Any]:
        """Re-read the configuration file; apply what changed in the devices, or refuse and keep all."""
        if self.source is None:
            return {"ok": False, "error": "this gateway was not started from a file; nothing to reload"}
        async with self._reloading:
            try:
                new = config_mod.load(self.source)
            except ConfigError as exc:
                log.error("reload_refused", problems=exc.problems)
                return {"ok": False, "error": "the configuration has errors; the running one stays", "problems": exc.problems}
            p = reload_mod.plan(self.cfg, new)
            problems = [f"{s}: changed; this setting needs a restart (systemctl restart shopfloor-gateway)" for s in p.restart]
            problems += missing_parts(new.model_copy(update={"devices": p.start}))
            if problems:
                log.error("reload_refused", problems=problems)
                return {"ok": False, "error": "refused; the running configuration stays", "problems": problems}
            await halt([self.devices.pop(name) for name in p.stop if name in self.devices], 5.0)
            for name in p.stop:
                self.health.pop(name, None)
            self.cfg = new
            self.pipeline.reconfigure(new)
            for name in list(self.health):
                if name not in {d.name for d in new.devices}:
                    del self.health[name]
            for d in p.start:
                self.start_device(d)
            if p.log_changed:
                logs.setup(new.log.level, new.log.format)
            result = p.to_json()
            log.info("reloaded", **result)
            return {"ok": True, **result}

    async def change(self, station: str | None, ch: Change) -> dict[str, Any]:
        station = station or self.cfg.gateway.stations[0].name
        if station not in self.pipeline.contexts:
            return {"ok": False, "error": f"unknown station {station!r}", "code": "unknown_station"}
        try:
            ticket, ctx = self.pipeline.change(station, ch)
        except ContextRefused as exc:
            return {"ok": False, "error": str(exc), "code": exc.code}
        await self.pipeline.committed(ticket)
        return {"ok": True, "context": ctx.to_json()}

    async def handle(self, req: dict[str, Any], peer: control.Peer) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return {"ok": True, **await self.status()}
        if cmd == "reload":
            return await self.reload()
        if cmd == "contexts":
            return {"ok": True, "contexts": {s: c.to_json() for s, c in self.pipeline.contexts.items()}}
        if cmd == "context":
            try:
                r = commands.control_request(req)
            except commands.Refused as exc:
                log.warning("command_rejected", source="cli", actor=peer.actor, reason=exc.reason, error=str(exc))
                return {"ok": False, "error": str(exc), "code": exc.reason}
            return await self.change(r.station, r.change("cli", peer.actor))
        if cmd == "dead_letter":
            return await deadletter.handle(self.log, req)
        if cmd == "trace":
            return await self.trace(req)
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def trace(self, req: dict[str, Any]) -> dict[str, Any]:
        """A trace request (CLI or station page). The minute under way is committed first, so a trace
        of a running lot holds its readings up to now, not only the minutes that are over (the table
        adds a minute written in parts: gateway.journal.aggregate)."""
        try:
            await self.log.flush()  # what is queued: folded once committed
            await self.log.flush(everything=True)
        except BufferError:
            pass  # the disk refuses writes (status says so): the trace answers from what the file holds
        return await trace.handle(self.cfg.buffer.path, req, trace.config_limits(self.cfg))

    def poll_periods(self) -> dict[str, dict]:
        return {name: h.periods for name, h in self.health.items() if h.periods}

    def summary(self) -> str:
        """One line for systemd's STATUS=: broker state and what waits in the buffer."""
        parts = []
        for sink in self.sinks:
            h = sink.health()
            parts.append(f"{sink.name} broker {h['state']}" + (f" ({h['reason']})" if h.get("reason") and h["state"] != "connected" else ""))
        # One line: a newline would start another KEY=VALUE assignment in the notify datagram.
        return " ".join(f"capturing; {', '.join(parts)}; {self.log.stats.rows} rows buffered".split())

    async def status(self) -> dict[str, Any]:
        st = self.log.stats
        oldest = await self.log.oldest()
        return {
            "gateway_id": self.cfg.gateway.id,
            "version": VERSION,
            "running": True,
            "uptime": round(time.time() - self.started, 1),
            "alarms": sorted(self.pipeline.alarms.values(), key=lambda a: a["since"]),
            "devices": [h.to_json() for h in self.health.values()],
            "buffer": {
                "rows": st.rows,
                "bytes": st.bytes,
                "oldest_unsent_age": round(time.time() - oldest, 3) if oldest else None,
                "pending_commit": self.log.pending(),
                "commits": self.log.commits,
                "disk_free": self.log.disk_free(),
                "dead_letter_rows": st.dead_rows,
                "dead_letter_bytes": st.dead_bytes,
                "journal_rows": st.journal_rows,
                "journal_bytes": st.journal_bytes,
            },
            "counters": {"read": self.pipeline.read, "buffered": st.counters["captured"], **self._counters(), "internal_errors": self.pipeline.internal_errors},
            "broker": self.publisher.to_json() if self.publisher else None,
            "sinks": {s.name: {**s.health(), **self._feed(s.name)} for s in self.sinks},
            "commands": self.commands.to_json(),
            "contexts": {s: c.to_json() for s, c in self.pipeline.contexts.items()},
        }


    def _counters(self) -> dict[str, Any]:
        """The file's counters; `published` and `dead_lettered` are those of the first sink."""
        c = {k: v for k, v in self.log.stats.counters.items() if k != "sinks"}
        first = self.log.readers[self.sinks[0].name] if self.sinks else None
        c["published"] = first.acked if first else 0
        c["dead_lettered"] = first.dead_lettered if first else 0
        return c

    def _feed(self, name: str) -> dict[str, Any]:
        r = self.log.readers[name]
        return {"cursor": r.cursor, "backlog": r.backlog, "acknowledged": r.acked, "dead_lettered": r.dead_lettered}


def _commands(cfg: Config, apply, key: bytes | None) -> commands.Commands:
    g, c = cfg.gateway, cfg.commands
    signed = bool(c.key_file or c.key_credential)
    guard = commands.Guard(key, c.max_age) if key is not None else None
    base = f"{cfg.mqtt.topic_prefix if cfg.mqtt else 'shopfloor'}/{g.site}/{g.area}/{g.line}"
    return commands.Commands(base, g.id, [s.name for s in g.stations], apply, guard, c.enabled and (guard is not None or not signed))


# Exit statuses of `run` (sysexits.h): what systemd and a technician read from a stop.
EX_OK = 0
EX_SOFTWARE = 70  # the stop overran its bound: something would not end
EX_IOERR = 74  # the buffer refused writes until the end: readings were never captured (count logged)
STOP_SECONDS = 10.0  # a stop ends within this, whatever is in flight: the parts below add up to it
STOP_DRAIN_SECONDS = 6.5  # stop devices, commit, deliver (DRAIN_SECONDS of it), say offline
STOP_HALT_SECONDS = 1.5  # end every task, cancelling again those that swallow a cancel
STOP_FLUSH_SECONDS = 1.5  # last commits of what the disk refused so far


async def run(cfg: Config, stop: asyncio.Event | None = None, started=None, source: Path | None = None) -> int:
    """Run until SIGTERM/SIGINT (or until `stop` is set, for embedding and tests).

    `started(gateway)` is called once everything runs; `source` is the configuration file that
    `reload` (and SIGHUP) read again. Returns the exit status.
    """
    preflight(cfg)
    hup = asyncio.Event()
    if stop is None:
        stop = asyncio.Event()
        _on_signals(stop, hup)
    status = EX_OK
    try:
        async with Log(cfg.buffer, [s.name for s in cfg.northbound], cfg.journal) as box:
            status = await _serve(cfg, box, stop, started, source, hup)
            if await _final_flush(box, STOP_FLUSH_SECONDS):
                status = EX_IOERR
    except BufferError:
        if status != EX_IOERR:  # already reported with the count of readings it concerns
            raise
    log.info("gateway_stopped", buffered_rows=box.stats.rows, exit_status=status)
    return status


async def _serve(cfg: Config, box: Log, stop: asyncio.Event, started, source: Path | None, hup: asyncio.Event) -> int:
    """The gateway's tasks, from start to the end of a stop; returns the exit status so far."""
    gw = Gateway(cfg, box, await box.contexts(), cfg.commands.key())
    gw.source = source
    log.info(
        "gateway_started",
        gateway_id=cfg.gateway.id,
        devices=len(cfg.devices),
        buffered_rows=box.stats.rows,
        sinks={s.name: f"{s.kind} {s.host}:{s.effective_port}" for s in cfg.northbound},
    )
    status = EX_OK
    async with asyncio.TaskGroup() as tg:
        writer = tg.create_task(box.run())
        sinks = [tg.create_task(s.run(box.feed(s.name)), name=f"sink:{s.name}") for s in gw.sinks]
        listening = asyncio.Event()
        ctl = tg.create_task(control.serve(cfg.control_socket, gw.handle, listening))
        gw._tg = tg
        for d in cfg.devices:
            if d.enabled:
                gw.start_device(d)
        wd = tg.create_task(_watchdog(gw.summary))
        others = [*sinks, ctl, wd, writer, tg.create_task(_on_hup(gw, hup)), tg.create_task(_sample(gw))]
        if cfg.http is not None:
            from gateway.ops import http

            others.append(tg.create_task(http.serve(cfg.http, gw)))
        try:
            await listening.wait()
            notify(f"READY=1\nSTATUS={gw.summary()}")
            if started is not None:
                started(gw)
            await stop.wait()
            notify("STOPPING=1")
            log.info("gateway_stopping", bound_seconds=STOP_SECONDS)
            async with asyncio.timeout(STOP_DRAIN_SECONDS):
                await _stop(gw)
        except TimeoutError:
            log.error("shutdown_overran", bound_seconds=STOP_DRAIN_SECONDS, buffered_rows=box.stats.rows)
            status = EX_SOFTWARE
        finally:
            # Also on the way out of a failure: no task may keep the TaskGroup (and the process) alive.
            stuck = await halt([*gw.devices.values(), *others], STOP_HALT_SECONDS)
            if stuck:
                log.error("shutdown_stuck_tasks", tasks=sorted(t.get_name() for t in stuck))
    return status


async def _stop(gw: Gateway) -> None:
    """Stop reading, commit what was read, deliver what the broker takes within DRAIN_SECONDS."""
    await halt(list(gw.devices.values()), STOP_HALT_SECONDS)
    box = gw.log
    try:
        await box.flush()
    except BufferError:
        return  # the records stay in memory; _final_flush retries and reports what is lost
    # Deliver what is buffered while the sinks are connected, within a bound; the rest stays on disk.
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            if all(s.health()["state"] == "connected" for s in gw.sinks):
                await box.empty.wait()
            for s in gw.sinks:
                idle = getattr(s, "idle", None)
                if idle is not None:
                    await idle.wait()
    except TimeoutError:
        # A broker that takes nothing would not take the goodbye either: its will says offline.
        log.warning("shutdown_undelivered", buffered_rows=box.stats.rows, sinks={s.name: s.health()["state"] for s in gw.sinks})
        return
    for s in gw.sinks:
        await s.goodbye()


async def _final_flush(box: Log, seconds: float) -> int:
    """Commit what is still in memory, retrying briefly while the disk refuses; return how many
    readings could not be captured (and say so: they are lost with the process)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            await box.flush()
            return 0
        except BufferError as exc:
            if loop.time() >= deadline:
                n = box.pending()
                log.error("shutdown_uncaptured", readings=n, error=str(exc))
                return n
        await asyncio.sleep(0.2)


async def halt(tasks: list[asyncio.Task], seconds: float) -> set[asyncio.Task]:
    """Cancel tasks and wait for them, within a bound; return those that would not end.

    A task is cancelled again each round: on Python 3.11 `asyncio.wait_for` (aiomqtt uses it) can
    swallow a cancellation that races the operation it waits for, and a lost cancel would keep the
    TaskGroup, and the process, waiting forever.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    pending = {t for t in tasks if not t.done()}
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            break
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(0.25, left))
    return pending


async def _sample(gw: Gateway) -> None:
    """Once a second, what each device has read so far: the rates in `status`; and each device's
    state to the sinks that follow it (Sparkplug's DDEATH/DBIRTH)."""
    follow = [s for s in gw.sinks if hasattr(s, "device_state")]
    traced = Traced()
    async for now in every(1.0):
        for h in list(gw.health.values()):
            h.sample(now)
            for sink in follow:
                try:
                    sink.device_state(h.device, h.state)
                except Exception as exc:  # noqa: BLE001 - a sink's bug costs that sink's news of a device, not the gateway
                    if traced.first(exc, sink.name):
                        log.error("sink_crashed", sink=sink.name, error=describe(exc), exc_info=exc)


async def _on_hup(gw: Gateway, hup: asyncio.Event) -> None:
    while True:
        await hup.wait()
        hup.clear()
        await gw.reload()


def _on_signals(stop: asyncio.Event, hup: asyncio.Event) -> None:
    """SIGTERM/SIGINT stop the gateway; a second one ends the process at once. SIGHUP reloads.

    Plain signal handlers, not the loop's: they run even while the loop is stuck, so the second
    signal always ends the process (status 128 + signal, as a shell reports it).
    """
    loop = asyncio.get_running_loop()
    got: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        got.append(signum)
        if len(got) > 1:
            os.write(2, b'{"event": "shutdown_forced", "level": "error", "signal": %d}\n' % signum)
            os._exit(128 + signum)
        loop.call_soon_threadsafe(stop.set)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    signal.signal(signal.SIGHUP, lambda signum, frame: loop.call_soon_threadsafe(hup.set))


async def _watchdog(summary: Callable[[], str]) -> None:
    """Ping systemd's watchdog from the event loop, so a loop that hangs gets the service restarted;
    each ping also refreshes the one-line STATUS shown by `systemctl status`."""
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notify(f"WATCHDOG=1\nSTATUS={summary()}")
        await asyncio.sleep(interval)
