"""The Sparkplug B 3.0 edge node: one MQTT session after another, each with its bdSeq and births.

A session: CONNECT with the NDEATH as Will (QoS 1, a new bdSeq, kept in the feed across restarts);
subscribe NCMD (and the primary host's STATE); wait until that host is online; NBIRTH, a DBIRTH
per known device; then DDATA from the log, a DBIRTH again whenever a device reports a metric (or a
datatype) its birth did not list, and a DDEATH when the gateway says a device is down.

What advances the cursor (see README.md): data goes out at QoS 0, which the broker never
acknowledges. After each batch the sink sends an UNSUBSCRIBE of a topic it never subscribed (a
fence); a broker handles one connection's packets in order, so its UNSUBACK says every message
before it was taken. The batch is acknowledged on that UNSUBACK unless the primary host went
offline first (its STATE comes before the UNSUBACK on the same connection), in which case it is
sent again later, as historical. With `data_qos: 1` each message's PUBACK acknowledges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import aiomqtt
import orjson
import paho.mqtt.client as mqtt
import structlog
from google.protobuf.message import DecodeError

from gateway.errors import Traced, describe
from gateway.model import TELEMETRY
from gateway.northbound.mqtt import PahoHooks, reconnecting, runs, tls_context
from gateway.northbound.sink import Chunk, Feed
from gateway.northbound.sparkplug import payload as pl
from gateway.northbound.sparkplug.catalog import Catalog
from gateway.northbound.sparkplug.points import Point, points

if TYPE_CHECKING:
    from gateway.northbound.sparkplug.config import SparkplugConfig

log = structlog.get_logger("gateway.northbound.sparkplug")

NS = "spBv1.0"
LIMIT = 2000  # records asked of the feed at once
FENCES = 8  # batches awaiting their UNSUBACK (or PUBACKs) at once
Value = tuple[int, int, Point, dict]  # record seq, metric alias, value, properties to send with it
DOWN = frozenset({"down", "failed", "crashed", "finished"})  # device states that end its Sparkplug life


class HostOffline(Exception):
    """The primary host said offline: end the session (NDEATH first) and connect again."""

    state = "host offline"


class SparkplugSink:
    def __init__(self, cfg: SparkplugConfig, node: str, stations: dict[str, str]):
        self.cfg = cfg
        self.name = cfg.name
        self.node = node
        self.stations = stations  # station name -> its Sparkplug device id
        self.catalog = Catalog()
        self.born: set[str] = set()  # devices with a DBIRTH in this session
        self.down: set[str] = set()  # devices the gateway reports down
        self.feed: Feed | None = None
        self.state, self.since, self.reason = "starting", time.time(), None
        self.bd_seq: int | None = None
        self.bd_used = False  # a CONNECT with this bdSeq was accepted
        self.seq = 0
        self.epoch = 0  # bumped whenever what was sent may not reach the host: pending batches are not acknowledged
        self.live_since = float("inf")  # records captured before this are historical
        self.host: dict[str, Any] = {"online": cfg.primary_host_id is None, "timestamp": 0}
        self.stale_until = 0.0  # monotonic time until which a re-found retained STATE is not trusted
        self.rebirth = False
        self.wake = asyncio.Event()
        self.counts = {"messages": 0, "points": 0, "births": 0, "rebirths": 0, "historical": 0, "acked": 0, "commands_refused": 0}
        self.connects = 0
        self._traced = Traced()
        self.noted: set[str] = set()  # events of bad incoming messages logged in the current run
        self.client: aiomqtt.Client | None = None
        self.hooks: PahoHooks | None = None
        g = cfg.group_id
        self.topics = {k: f"{NS}/{g}/{k}/{node}" for k in ("NBIRTH", "NDEATH", "NCMD", "DBIRTH", "DDATA", "DDEATH")}
        self.state_topic = f"{NS}/STATE/{cfg.primary_host_id}" if cfg.primary_host_id else None
        self.fence_topic = f"{NS}/{g}/FENCE/{node}"  # never subscribed: only its UNSUBACK matters

    # -- Sink -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        feed = self.feed
        return {
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "kind": "sparkplug",
            "broker": f"{self.cfg.host}:{self.cfg.effective_port}",
            "edge_node": f"{self.cfg.group_id}/{self.node}",
            "bdSeq": self.bd_seq,
            "primary_host": None if self.state_topic is None else {"id": self.cfg.primary_host_id, **self.host},
            "devices_born": len(self.born),
            "connects": self.connects,
            "backlog": feed.backlog if feed is not None else None,
            **self.counts,
        }

    def device_state(self, device: str, state: str) -> None:
        """The gateway's word on one of its devices (supervisor states): a DDEATH when it goes down,
        a DBIRTH when it is back."""
        down = state in DOWN
        if down != (device in self.down):
            (self.down.add if down else self.down.discard)(device)
            self.wake.set()

    async def goodbye(self) -> None:
        """On a clean stop, say NDEATH ourselves: a clean DISCONNECT discards the Will."""
        if self.client is not None and self.state in ("connected", "waiting for host"):
            await self._ndeath()

    async def run(self, feed: Feed) -> None:
        self.feed = feed
        await reconnecting(self, self._attempt, self.cfg, calm=(HostOffline,))

    async def _attempt(self) -> None:
        try:
            await self._connection(self.feed)
        finally:
            self.epoch += 1
            self.live_since = float("inf")
            self.client = None
            self.feed.rewind()

    # -- a session --------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        m = self.cfg
        v5 = m.protocol == "5"
        return aiomqtt.Client(
            m.host,
            m.effective_port,
            identifier=m.client_id or f"shopfloor-{self.node}-sparkplug",
            username=m.username,
            password=m.password(),
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            # Sparkplug sessions start clean (3.1.1 clean session; MQTT 5 clean start, no expiry).
            clean_session=None if v5 else True,
            clean_start=True if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            will=aiomqtt.Will(self.topics["NDEATH"], pl.ndeath(self.bd_seq, _ms()), qos=1, retain=False),
            keepalive=m.keepalive,
            timeout=max(10.0, m.keepalive),
            tls_context=tls_context(m) if m.tls else None,
            max_inflight_messages=m.max_inflight,
        )

    def _next_bd_seq(self, feed: Feed) -> int:
        prev = feed.recall("bdSeq")
        bd = 0 if prev is None else (int(prev) + 1) % 256
        feed.remember("bdSeq", str(bd))
        return bd

    async def _connection(self, feed: Feed) -> None:
        # A new bdSeq for each session; an attempt that got no CONNACK made none, and its Will with it.
        if self.bd_seq is None or self.bd_used:
            self.bd_seq, self.bd_used = self._next_bd_seq(feed), False
            await feed.sync()  # in the file before the Will that carries it: a kill never reuses it
        self.host["online"] = self.state_topic is None
        client = self._client()
        self.hooks = PahoHooks(client)
        paho = client._client
        paho.message_callback_add(self.topics["NCMD"], self._on_ncmd)
        if self.state_topic:
            # Handled in paho's read callback, in packet order: a STATE that came before a fence's
            # UNSUBACK is seen before that UNSUBACK acknowledges anything.
            paho.message_callback_add(self.state_topic, self._on_state)
        async with client:
            self.hooks.connected()
            client.pending_calls_threshold = 1 << 30
            self.client = client
            self.connects += 1
            self.bd_used = True
            await client.subscribe(self.topics["NCMD"], qos=1)
            if self.state_topic:
                await client.subscribe(self.state_topic, qos=1)
                self._set("waiting for host", f"no online STATE from {self.cfg.primary_host_id} yet")
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._watch(client))
                    await self._pump(client, feed, tg)
            except* aiomqtt.MqttError as eg:
                raise eg.exceptions[0] from None
            except* HostOffline:
                await self._ndeath()
                raise HostOffline(f"{self.cfg.primary_host_id} is offline") from None

    async def _watch(self, client: aiomqtt.Client) -> None:
        # The disconnect detector: the iterator raises MqttError when the connection drops. Every
        # topic we subscribe has its own callback, so nothing arrives here.
        async for _ in client.messages:
            pass

    async def _pump(self, client: aiomqtt.Client, feed: Feed, tg: asyncio.TaskGroup) -> None:
        """Everything this session publishes, from one task: seq numbers follow the wire order."""
        window = asyncio.Semaphore(FENCES)
        pending: asyncio.Future | None = None
        try:
            await self._host_online()
            self._births()
            self.live_since = time.time()
            self._set("connected", None)
            while True:
                if not self.host["online"]:
                    raise HostOffline(f"{self.cfg.primary_host_id} is offline")
                if self.rebirth:
                    self.rebirth = False
                    self.counts["rebirths"] += 1
                    self._births()
                self._sync_devices()
                if pending is None:
                    pending = asyncio.ensure_future(feed.next(LIMIT))
                self.wake.clear()
                waker = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait({pending, waker}, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                if pending.done():
                    chunks, pending = pending.result(), None
                    await window.acquire()
                    if not self.host["online"]:
                        window.release()
                        raise HostOffline(f"{self.cfg.primary_host_id} is offline")  # these chunks go again, after a rewind
                    sent = self._forward(feed, chunks)
                    tg.create_task(self._settle(client, feed, window, sent, self.epoch))
        finally:
            if pending is not None:
                pending.cancel()

    async def _host_online(self) -> None:
        while not (self.host["online"] and time.monotonic() >= self.stale_until):
            self.wake.clear()
            wait = self.stale_until - time.monotonic() if self.host["online"] else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), wait)

    # -- publishing (synchronous: one call, one message on the wire, in order) ---------------

    def _emit(self, kind: str, device: str | None, body: bytes) -> asyncio.Future | None:
        topic = self.topics[kind] + (f"/{device}" if device else "")
        self.counts["messages"] += 1
        if self.cfg.data_qos == 1:
            return self.hooks.send(topic, body)[1]
        info = self.hooks.paho.publish(topic, body, qos=0)
        if info.rc:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        return None

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def _births(self) -> None:
        self.seq = 0
        self._emit("NBIRTH", None, pl.nbirth(self.bd_seq, _ms()))
        self.born.clear()
        for device in self.catalog.devices:
            if device not in self.down:
                self._dbirth(device)

    def _dbirth(self, device: str) -> None:
        self._emit("DBIRTH", device, pl.dbirth(self._next_seq(), _ms(), self.catalog.devices[device].values()))
        self.born.add(device)
        self.counts["births"] += 1

    def _sync_devices(self) -> None:
        for device in self.catalog.devices:
            if device in self.down and device in self.born:
                self._emit("DDEATH", device, pl.ddeath(self._next_seq(), _ms()))
                self.born.discard(device)
            elif device not in self.down and device not in self.born:
                self._dbirth(device)

    def _forward(self, feed: Feed, chunks: list[Chunk]) -> list[tuple[list[int], asyncio.Future | None]]:
        """DDATA for `chunks`; returns each message's records and, at QoS 1, its PUBACK."""
        sent = []
        for chunk in chunks:
            device = chunk.device if chunk.type == TELEMETRY and chunk.device else self.stations.get(chunk.station, chunk.station)
            historical = chunk.at < self.live_since
            admitted = []
            rebirth = device not in self.born
            for seq, pts in self._points(feed, chunk):
                for p in pts:
                    m, new = self.catalog.admit(device, p)
                    rebirth |= new
                    admitted.append((seq, m, p))
            if not admitted:
                continue
            if rebirth:
                self._dbirth(device)  # with the values before this chunk's: the data follows
            values: list[Value] = []
            for seq, m, p in admitted:
                values.append((seq, m.alias, p, p.props if historical else delta(m.props, p.props)))
                self.catalog.sent(m, p)
            for group in self._groups(values):
                for seqs, body, n in self._fit(feed, group, historical):
                    self._next_seq()
                    sent.append((seqs, self._emit("DDATA", device, body)))
                    self.counts["points"] += n
                    if historical:
                        self.counts["historical"] += n
        return sent

    def _points(self, feed: Feed, chunk: Chunk) -> list[tuple[int, list[Point]]]:
        out = []
        for seq, rec in chunk.records():
            try:
                out.append((seq, points(seq, rec)))
            except (KeyError, ValueError, TypeError) as exc:
                feed.dead(seq, seq, f"not expressible as Sparkplug metrics: {describe(exc)}")
        return out

    def _groups(self, values: list[Value]):
        """At most max_pack values (whole records: a context event's fields stay together)."""
        group: list[Value] = []
        for i, v in enumerate(values):
            group.append(v)
            if len(group) >= self.cfg.max_pack and (i + 1 == len(values) or values[i + 1][0] != v[0]):
                yield group
                group = []
        if group:
            yield group

    def _fit(self, feed: Feed, group: list[Value], historical: bool):
        """(record seqs, DDATA body, values in it) within max_payload, numbered with the next seq; a
        record too large alone is dead-lettered."""
        body = pl.ddata((self.seq + 1) % 256, _ms(), ((alias, p, props) for _, alias, p, props in group), historical)
        seqs = sorted({v[0] for v in group})
        if len(body) <= self.cfg.max_payload:
            yield seqs, body, len(group)
        elif len(seqs) == 1:
            feed.dead(seqs[0], seqs[0], f"record of {len(body)} bytes as Sparkplug exceeds max_payload ({self.cfg.max_payload})")
        else:
            half = seqs[len(seqs) // 2]
            yield from self._fit(feed, [v for v in group if v[0] < half], historical)
            yield from self._fit(feed, [v for v in group if v[0] >= half], historical)

    async def _settle(self, client: aiomqtt.Client, feed: Feed, window: asyncio.Semaphore, sent, epoch: int) -> None:
        try:
            if self.cfg.data_qos == 1:
                codes = await asyncio.gather(*(f for _, f in sent))
            else:
                await client.unsubscribe(self.fence_topic)
                codes = [None] * len(sent)
            if epoch != self.epoch:
                return  # the host went offline before the broker took these: send them again, historical
            for (seqs, _), code in zip(sent, codes):
                if code is not None and code.is_failure:
                    for first, last in runs(seqs):
                        feed.dead(first, last, f"the broker refused the message: PUBACK reason code 0x{code.value:02X} ({code})")
                    continue
                for first, last in runs(seqs):
                    feed.ack(first, last)
                self.counts["acked"] += len(seqs)
        finally:
            window.release()

    async def _ndeath(self) -> None:
        try:
            async with asyncio.timeout(2):
                await self.hooks.publish(self.topics["NDEATH"], pl.ndeath(self.bd_seq, _ms()))
        except (aiomqtt.MqttError, TimeoutError):
            pass  # the Will says NDEATH anyway when the connection is gone

    # -- what arrives (paho callbacks, on the event loop, in packet order) ---------------------

    def _on_ncmd(self, client, userdata, msg) -> None:
        try:
            asked = pl.rebirth_asked(msg.payload)
        except DecodeError as exc:
            self.counts["commands_refused"] += 1
            self._refused("sparkplug_command_refused", msg.topic, f"not a Sparkplug B payload: {describe(exc)}")
            return
        self.noted.discard("sparkplug_command_refused")
        if asked and self.state == "connected":
            self.rebirth = True  # many requests before the pump runs are one rebirth
            self.wake.set()

    def _on_state(self, client, userdata, msg) -> None:
        try:
            state = orjson.loads(msg.payload)
            online, ts = state["online"], state["timestamp"]
            if not isinstance(online, bool) or type(ts) is not int:
                raise TypeError("online must be a boolean and timestamp an integer")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            self._refused("sparkplug_state_ignored", msg.topic, describe(exc))
            return
        self.noted.discard("sparkplug_state_ignored")
        if ts < self.host["timestamp"]:
            return  # an older STATE than the one we follow
        # The retained STATE we already followed, found again on a new connection: the host may not
        # be subscribed (yet) after a broker restart; give it `host_grace` to say it anew.
        again = bool(msg.retain) and online and ts == self.host["timestamp"]
        self.stale_until = time.monotonic() + self.cfg.host_grace if again else 0.0
        self.host.update(online=online, timestamp=ts)
        if not online:
            self.epoch += 1
        self.wake.set()

    def _refused(self, event: str, topic: str, reason: str) -> None:
        """Log the first of a run of bad messages (anyone on the broker can send them), not each."""
        if event not in self.noted:
            self.noted.add(event)
            log.warning(event, sink=self.name, topic=topic, reason=reason, hint="further ones are not logged until a good one arrives")

    # -- state ------------------------------------------------------------------------------

    def _crashed(self, exc: Exception) -> None:
        first = self._traced.first(exc)
        if self.state != "crashed":
            log.error("sparkplug_crashed", sink=self.name, error=describe(exc), exc_info=exc if first else None)
        self.state, self.since, self.reason = "crashed", time.time(), describe(exc)

    def _set(self, state: str, reason: str | None) -> None:
        if state == self.state:
            return
        self.state, self.since, self.reason = state, time.time(), reason
        fields = {"sink": self.name, "broker": f"{self.cfg.host}:{self.cfg.effective_port}", "bdSeq": self.bd_seq}
        if state == "connected":
            log.info("sparkplug_connected", **fields)
        else:
            log.warning(f"sparkplug_{state.replace(' ', '_')}", reason=reason, **fields)


def delta(sent: dict[str, tuple[int, Any]], props: dict[str, tuple[int, Any]]) -> dict[str, tuple[int, Any]]:
    """Properties of a live value that changed since the metric's last value, a property it no
    longer has as null: a host applies them in order (a birth carries them all, and so does every
    historical value)."""
    if sent == props:
        return {}
    changed = {k: v for k, v in props.items() if sent.get(k) != v}
    for k, (datatype, value) in sent.items():
        if k not in props and value is not None:
            changed[k] = (datatype, None)
    return changed


def _ms() -> int:
    return round(time.time() * 1000)
