"""What the station page shows, taken from a running gateway, and the events that keep it live.

`on_record` is a pipeline listener: it runs inside capture, so it only files the record and offers
one encoded frame to the hub. Device health, broker and buffer come from `Gateway.status()` once a
second, and only while someone watches; that tick is also the page's heartbeat.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from gateway.page.board import Board
from gateway.page.hub import Hub, frame

if TYPE_CHECKING:
    from gateway.daemon import Gateway

TICK = 1.0
CONTEXT_FIELDS = ("station", "state", "context_id", "version", "source", "work_order", "operation", "lot", "operators", "started_at")
DEVICE_FIELDS = ("device", "kind", "state", "since", "reason", "error", "last_reading", "rate", "retry_in")
SINK_FIELDS = ("kind", "state", "since", "reason", "broker", "backlog")
BUFFER_FIELDS = ("rows", "bytes", "oldest_unsent_age", "pending_commit", "disk_free", "dead_letter_rows")


def dumps(data: Any) -> bytes:
    """JSON for the browser. What orjson refuses (lone surrogates from undecodable scanner bytes,
    integers past 64 bits) is made printable first: a scan on the page must not cost its capture."""
    try:
        return orjson.dumps(data, default=str)
    except TypeError:
        return orjson.dumps(_printable(data), default=str)


def _printable(v: Any) -> Any:
    if isinstance(v, str):
        return v.encode("utf-8", "replace").decode("utf-8")
    if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**64:
        return str(v)
    if isinstance(v, dict):
        return {str(_printable(k)): _printable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_printable(x) for x in v]
    return v


def pick(d: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: d.get(k) for k in keys} if d else {}


class Live:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.board = Board()
        self.hub = Hub()

    def on_record(self, rec: dict[str, Any]) -> None:
        kind, station = rec.get("type"), str(rec.get("station"))
        if kind in ("scan", "rfid"):
            self._send(station, "scan", self.board.add(rec))
        elif kind == "context":
            self._send(station, "context", self.context(station))
        elif kind == "alarm":
            self._send(station, "alarms", self.alarms(station))

    def _send(self, station: str, event: str, data: Any) -> None:
        if any(c.station == station for c in self.hub.clients):
            self.hub.publish(station, frame(event, dumps(data)))

    def stations(self) -> list[str]:
        return [s.name for s in self.gw.cfg.gateway.stations]

    def description(self, station: str) -> str | None:
        return next((s.description for s in self.gw.cfg.gateway.stations if s.name == station), None)

    def context(self, station: str) -> dict[str, Any]:
        ctx = self.gw.pipeline.contexts.get(station)
        return pick(ctx.to_json(), CONTEXT_FIELDS) if ctx else {"station": station, "state": "idle"}

    def alarms(self, station: str) -> list[dict[str, Any]]:
        found = [a for a in self.gw.pipeline.alarms.values() if a.get("station") == station]
        return sorted(found, key=lambda a: a.get("since") or 0)

    async def health(self) -> dict[str, dict[str, Any]]:
        """Per station: its devices, the sinks (the broker) and the buffer."""
        st = await self.gw.status()
        cfg = self.gw.cfg
        where = {d.name: cfg.station_of(d) for d in cfg.devices}
        sinks = [{"name": name, **pick(h, SINK_FIELDS)} for name, h in (st.get("sinks") or {}).items()]
        common = {"sinks": sinks, "buffer": pick(st.get("buffer"), BUFFER_FIELDS)}
        out = {s: {"devices": [], **common} for s in self.stations()}
        for d in st.get("devices", []):
            s = where.get(d.get("device"))
            if s in out:
                out[s]["devices"].append(pick(d, DEVICE_FIELDS))
        return out

    async def snapshot(self, station: str) -> dict[str, Any]:
        return {
            "station": station,
            "context": self.context(station),
            "scans": self.board.recent(station),
            "alarms": self.alarms(station),
            "health": (await self.health()).get(station, {}),
        }

    async def tick(self) -> None:
        """Send each watched station its health once a second, until cancelled."""
        while True:
            await asyncio.sleep(TICK)
            watched = self.hub.stations()
            if not watched:
                continue
            health = await self.health()
            for s in watched & set(health):
                self.hub.publish(s, frame("health", dumps(health[s])))
