"""Store-and-forward to MQTT: rows leave the outbox only after the broker's PUBACK.

- Reads committed rows in seq order, packs up to `max_pack` rows of one topic into one message (a
  JSON array; a single object when `max_pack` is 1), and keeps up to `max_inflight` messages
  awaiting PUBACK. Order per topic is kept: messages go out in seq order on one connection.
- On PUBACK the rows are handed to `Outbox.ack()`; a message the broker cannot take (larger than
  `max_payload`) is split, and a single record still too large goes to the dead-letter table.
- When the connection drops, everything in flight is abandoned (not acknowledged, so still in the
  outbox) and re-sent after reconnecting: at least once; consumers drop duplicates by
  (gateway_id, seq).
- A retained status message on `<prefix>/<site>/<area>/<line>/_gateway/<id>/status` says online; the
  broker publishes the last will (offline) when the gateway vanishes.
- MES commands arrive on `<prefix>/<site>/<area>/<line>/<station>/cmd/context` and go to `on_command`.
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import orjson
import structlog

from gateway.config import Config
from gateway.outbox import Outbox
from gateway.record import with_seq
from gateway.supervisor import backoff

log = structlog.get_logger("gateway.publisher")

FETCH = 2000  # rows read from the outbox at once


class Publisher:
    def __init__(self, cfg: Config, outbox: Outbox, on_command: Callable[[str, bytes], Awaitable[None]] | None = None):
        self.cfg = cfg
        self.mqtt = cfg.mqtt
        self.outbox = outbox
        self.on_command = on_command
        g = cfg.gateway
        base = f"{cfg.mqtt.topic_prefix}/{g.site}/{g.area}/{g.line}"
        self.status_topic = f"{base}/_gateway/{g.id}/status"
        self.command_filter = f"{base}/+/cmd/+"
        self.state = "starting"
        self.since = time.time()
        self.reason: str | None = None
        self.sent_messages = 0
        self.inflight = 0
        self.connects = 0
        self.client: aiomqtt.Client | None = None
        self.latency: deque[float] = deque(maxlen=100_000)  # ingest -> PUBACK, seconds, recent rows
        self.idle = asyncio.Event()  # set while nothing awaits a PUBACK
        self.idle.set()

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "broker": f"{self.mqtt.host}:{self.mqtt.effective_port}",
            "messages": self.sent_messages,
            "inflight": self.inflight,
            "connects": self.connects,
            "latency_ms": self.latency_ms(),
        }

    def latency_ms(self) -> dict[str, float] | None:
        """Ingest-to-PUBACK latency of the most recent rows (p50, p99, max) in milliseconds."""
        if len(self.latency) < 2:
            return None
        q = statistics.quantiles(self.latency, n=100, method="inclusive")
        return {"p50": round(q[49] * 1000, 2), "p99": round(q[98] * 1000, 2), "max": round(max(self.latency) * 1000, 2), "rows": len(self.latency)}

    def _client(self) -> aiomqtt.Client:
        m = self.mqtt
        g = self.cfg.gateway
        offline = orjson.dumps({"gateway_id": g.id, "state": "offline", "reason": "connection lost"})
        return aiomqtt.Client(
            m.host,
            m.effective_port,
            identifier=m.client_id or f"shopfloor-{g.id}",
            username=m.username,
            password=m.password(),
            protocol=aiomqtt.ProtocolVersion.V5 if m.protocol == "5" else aiomqtt.ProtocolVersion.V311,
            clean_session=None if m.protocol == "5" else False,
            will=aiomqtt.Will(self.status_topic, offline, qos=1, retain=True),
            keepalive=m.keepalive,
            timeout=max(10.0, m.keepalive),
            tls_context=tls_context(self.cfg) if m.tls else None,
            max_inflight_messages=m.max_inflight,
        )

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                client = self._client()
                async with client:
                    attempt = 0
                    # aiomqtt warns on every publish beyond this many pending; we bound in-flight ourselves.
                    client.pending_calls_threshold = 1 << 30
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self._set("disconnected", str(exc))
                if asyncio.current_task().cancelling():
                    # A stop request that raced the connection loss was absorbed by the session's
                    # TaskGroup together with the MqttError (Python 3.11): honour it here.
                    raise asyncio.CancelledError from None
            delay = backoff(attempt, self.mqtt.reconnect_initial, self.mqtt.reconnect_max)
            attempt += 1
            await asyncio.sleep(delay)

    async def goodbye(self) -> None:
        """On a clean stop, replace the retained status by offline (the will covers unclean ones)."""
        if self.client is None or self.state != "connected":
            return
        g = self.cfg.gateway
        try:
            async with asyncio.timeout(2):
                await self.client.publish(
                    self.status_topic, orjson.dumps({"gateway_id": g.id, "state": "offline", "reason": "stopped"}), qos=1, retain=True
                )
        except (aiomqtt.MqttError, TimeoutError):
            pass  # the will message says offline anyway

    async def _session(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.connects += 1
        self._set("connected", None)
        g = self.cfg.gateway
        await client.publish(
            self.status_topic,
            orjson.dumps({"gateway_id": g.id, "state": "online", "since": time.time()}),
            qos=1,
            retain=True,
        )
        await client.subscribe(self.command_filter, qos=1)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._commands(client))
                await self._send(client, tg)
        except* aiomqtt.MqttError as eg:
            raise eg.exceptions[0] from None

    async def _commands(self, client: aiomqtt.Client) -> None:
        # Also the disconnect detector: the iterator raises MqttError when the connection drops.
        async for msg in client.messages:
            if self.on_command is not None:
                await self.on_command(str(msg.topic), bytes(msg.payload or b""))

    async def _send(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        window = asyncio.Semaphore(self.mqtt.max_inflight)
        cursor = 0
        pack = self.mqtt.max_pack
        while True:
            self.outbox.new_rows.clear()
            rows = await self.outbox.fetch(cursor, FETCH)
            if not rows:
                await self.outbox.new_rows.wait()
                continue
            cursor = rows[-1][0]
            # Group by topic, keeping seq order inside each group.
            groups: dict[str, list[tuple[int, bytes, float]]] = {}
            for seq, topic, payload, at in rows:
                groups.setdefault(topic, []).append((seq, payload, at))
            for topic, items in groups.items():
                for i in range(0, len(items), pack):
                    for seqs, body, ats in self._messages(items[i : i + pack]):
                        await window.acquire()
                        self.inflight += 1
                        self.idle.clear()
                        tg.create_task(self._publish(client, window, topic, body, seqs, ats))

    def _messages(self, items: list[tuple[int, bytes, float]]):
        """Yield (seqs, payload, ingest times) messages within max_payload; a record too big
        on its own is dead-lettered."""
        limit = self.mqtt.max_payload
        if self.mqtt.max_pack == 1:
            for seq, p, at in items:
                body = with_seq(seq, p)
                if len(body) > limit:
                    self._too_big(seq, len(body))
                    continue
                yield [seq], body, [at]
            return
        parts: list[bytes] = []
        seqs: list[int] = []
        ats: list[float] = []
        size = 2
        for seq, p, at in items:
            obj = with_seq(seq, p)
            if len(obj) + 2 > limit:
                self._too_big(seq, len(obj))
                continue
            if parts and size + len(obj) + 1 > limit:
                yield seqs, b"[" + b",".join(parts) + b"]", ats
                parts, seqs, ats, size = [], [], [], 2
            parts.append(obj)
            seqs.append(seq)
            ats.append(at)
            size += len(obj) + 1
        if parts:
            yield seqs, b"[" + b",".join(parts) + b"]", ats

    def _too_big(self, seq: int, size: int) -> None:
        reason = f"record of {size} bytes exceeds mqtt.max_payload ({self.mqtt.max_payload})"
        log.error("record_dead_lettered", seq=seq, reason=reason)
        self.outbox.dead([seq], reason)

    async def _publish(self, client: aiomqtt.Client, window: asyncio.Semaphore, topic: str, body: bytes, seqs: list[int], ats: list[float]) -> None:
        try:
            await client.publish(topic, body, qos=1)
            self.outbox.ack(seqs)
            self.sent_messages += 1
            now = time.time()
            self.latency.extend(now - at for at in ats)
        finally:
            self.inflight -= 1
            if not self.inflight:
                self.idle.set()
            window.release()

    def _set(self, state: str, reason: str | None) -> None:
        if state == self.state:
            return
        prev, prev_since = self.state, self.since
        self.state, self.since, self.reason = state, time.time(), reason
        broker = f"{self.mqtt.host}:{self.mqtt.effective_port}"
        if state == "connected":
            log.info("broker_connected", broker=broker, down_seconds=round(self.since - prev_since, 1) if self.connects > 1 else None)
        else:
            log.warning("broker_lost" if prev == "connected" else "broker_unreachable", broker=broker, reason=reason)


def tls_context(cfg: Config) -> ssl.SSLContext:
    t = cfg.mqtt.tls
    assert t is not None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(t.ca_file))
    ctx.check_hostname = t.check_hostname
    if t.cert_file:
        password = t.key_password_file.read_text().splitlines()[0] if t.key_password_file else None
        ctx.load_cert_chain(str(t.cert_file), str(t.key_file) if t.key_file else None, password=password)
    return ctx
