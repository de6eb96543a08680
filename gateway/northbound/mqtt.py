"""The JSON sink: records as JSON on UNS topics; its cursor moves only on the broker's PUBACK.

- Topics: `<prefix>/<site>/<area>/<line>/<station>/<device>/<type>`, and `…/<station>/context` for
  context events. A record is one JSON object with `seq` first (gateway.capture.record.wire).
- Reads committed records from its feed in seq order, packs up to `max_pack` records of one topic
  into one message (a JSON array; a single object when `max_pack` is 1), and keeps up to
  `max_inflight` messages awaiting PUBACK. Order per topic is kept: messages go out in seq order on
  one connection.
- On PUBACK the records are acknowledged to the feed; a message the broker cannot take (larger
  than `max_payload`) is split, and a single record still too large is dead-lettered.
- When the connection drops, the feed is rewound: everything not acknowledged is sent again after
  reconnecting: at least once; consumers drop duplicates by (gateway_id, seq).
- A retained status message on `<prefix>/<site>/<area>/<line>/_gateway/<id>/status` says online; the
  broker publishes the last will (offline) when the gateway vanishes.
- MES commands arrive on `<prefix>/<site>/<area>/<line>/<station>/cmd/context` and go to `on_command`
  (gateway.station.commands), with their retain flag: MQTT 5 subscribes with retain-as-published, so a
  retained command stays recognisable on a live subscription. The reply it returns is published
  (QoS 1, with the MQTT 5 correlation data). Without `on_command` (commands disabled) the gateway
  does not subscribe, and removes the subscription a persistent session may still hold.
- MQTT 5: a PUBACK with a reason code >= 0x80 refuses the message (e.g. 0x87 not authorized by the
  broker's ACL). Its rows are not acknowledged as delivered: they go to the dead-letter table with the
  reason code (0x91 and 0x97, which may pass, reconnect and retry instead). MQTT 3.1.1 has no way to
  say this: mosquitto, for one, acknowledges a denied publish and drops it.
- A connection that fails says why in `status` in words a person can act on (`explain`).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

import aiomqtt
import orjson
import paho.mqtt.client as mqtt
import structlog
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.capture.record import wire
from gateway.capture.supervisor import backoff
from gateway.northbound.settings import MqttConfig
from gateway.northbound.sink import Chunk, Feed
from gateway.errors import Traced, describe
from gateway.kit.histogram import LATENCY_BUCKETS, Histogram, Recent
from gateway.station.commands import Incoming, Reply

log = structlog.get_logger("gateway.northbound.mqtt")

FETCH = 5000  # records read from the feed at once
# PUBACK reason codes that may pass (packet identifier in use, quota exceeded): reconnect and send again
# rather than dead-letter. Every other code >= 0x80 refuses the message for good.
RETRY_CODES = {0x91, 0x97}
LATENCY_ROWS = 5_000  # the status's latency figures are those of the last rows acknowledged
# MQTT 5 session expiry: never (0xFFFFFFFF), like a 3.1.1 session with clean_session=False.
SESSION_EXPIRY = 0xFFFFFFFF


class Reconnecting(Protocol):
    """What `reconnecting` needs of a sink: its session count and its state changes."""

    connects: int

    def _set(self, state: str, reason: str | None) -> None: ...

    def _crashed(self, exc: Exception) -> None: ...


async def reconnecting(sink: Reconnecting, connection: Callable[[], Awaitable[None]], settings: MqttConfig,
                       calm: tuple[type[Exception], ...] = ()) -> None:
    """Run `connection()` (one connection and its session) again and again, with backoff, until cancelled.

    - A lost or refused connection (MqttError) sets the state `disconnected` with the reason in words
      (`explain`); after a session that was up the next attempt is at once.
    - An exception of `calm` ends a session by design: the state is its `state` attribute, the
      reason its text, and the next attempt is at once.
    - Anything else is a bug, or a library raising what it never documented: the sink is `crashed`
      and connects again; the records stay in the log and go out on the next connection. The backoff
      keeps growing across crashes: a bug that strikes every session is not a loop.
    """
    attempt = 0
    while True:
        connects = sink.connects
        try:
            await connection()
        except calm as exc:
            attempt = 0
            sink._set(getattr(exc, "state", "disconnected"), str(exc))
        except aiomqtt.MqttError as exc:
            if sink.connects > connects:
                attempt = 0
            sink._set("disconnected", explain(exc, settings))
            if asyncio.current_task().cancelling():
                # A stop request that raced the connection loss was absorbed by the session's
                # TaskGroup together with the MqttError (Python 3.11): honour it here.
                raise asyncio.CancelledError from None
        except Exception as exc:  # noqa: BLE001 - the sink's containment boundary (above)
            sink._crashed(exc)
            if asyncio.current_task().cancelling():
                raise asyncio.CancelledError from None
        await asyncio.sleep(backoff(attempt, settings.reconnect_initial, settings.reconnect_max))
        attempt += 1


class PahoHooks:
    """What aiomqtt 2.5 does not pass on, taken from the paho client it wraps (`client._client`).

    - PUBACK reason codes: aiomqtt's publish() returns on any PUBACK, even one that refuses the
      message. `publish()` here sends through paho and resolves with the reason code of that message
      id; aiomqtt still runs the connection and the socket callbacks, and gets the PUBACKs of its own
      publishes (status messages).
    - Why a connection closed before CONNACK: a broker that rejects our client certificate does so
      with a TLS alert after the handshake; paho only logs it and aiomqtt would wait for its connect
      timeout and say "Operation timed out". Here the connect fails at once with paho's last error.
    """

    def __init__(self, client: aiomqtt.Client):
        self.client = client
        self.paho = client._client
        self.loop = asyncio.get_running_loop()
        self.acks: dict[int, asyncio.Future | Callable[[int, ReasonCode], None]] = {}
        self.last_error: str | None = None
        self._aiomqtt_on_publish = self.paho.on_publish
        self._aiomqtt_on_disconnect = self.paho.on_disconnect
        self.paho.on_publish = self._on_publish
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_log = self._on_log

    def send(self, topic: str, payload: bytes) -> tuple[int, asyncio.Future]:
        """Hand a QoS 1 message to the connection now (so messages keep the order of the calls);
        the future resolves with its PUBACK reason code."""
        fut = self.loop.create_future()
        return self.send_then(topic, payload, fut), fut

    def send_then(self, topic: str, payload: bytes, then: asyncio.Future | Callable[[int, ReasonCode], None]) -> int:
        """`send()` with `then` resolved, or called with (mid, reason code), on the PUBACK: a callback
        costs no task and no timer per message; a PUBACK that never comes is the caller's watch."""
        info = self.paho.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        # The PUBACK is read by a socket callback on this same event loop, so it cannot have arrived
        # before `then` is in place.
        self.acks[info.mid] = then
        return info.mid

    async def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason code (always success in MQTT 3.1.1)."""
        mid, fut = self.send(topic, payload)
        try:
            async with asyncio.timeout(self.client.timeout):
                return await fut
        except TimeoutError:
            raise aiomqtt.MqttError(f"no PUBACK within {self.client.timeout:g} s") from None
        finally:
            self.acks.pop(mid, None)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        then = self.acks.get(mid)
        if then is None:
            self._aiomqtt_on_publish(client, userdata, mid, reason_code, properties)
        elif isinstance(then, asyncio.Future):
            if not then.done():
                then.set_result(reason_code)
        else:
            del self.acks[mid]
            then(mid, reason_code)

    def connected(self) -> None:
        """Stop listening to paho's log once connected: while `on_log` is set, paho formats a line
        for every packet, and only the reason of a failed connect is wanted."""
        self.paho.on_log = None

    def _on_log(self, client, userdata, level, text) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            self.last_error = text

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._aiomqtt_on_disconnect(client, userdata, flags, reason_code, properties)
        # May run in the executor thread that connects: hand over to the loop. Take the future now:
        # aiomqtt replaces it after a disconnect.
        self.loop.call_soon_threadsafe(self._fail_connect, self.client._connected, reason_code)

    def _fail_connect(self, connected: asyncio.Future, reason_code) -> None:
        if not connected.done():
            connected.set_exception(aiomqtt.MqttError(self.last_error or f"connection closed before CONNACK ({reason_code})"))


class Sent:
    """One message: its records as runs of seqs and of ingest times, its body until it is sent."""

    __slots__ = ("key", "topic", "parts", "runs", "ats", "count", "size", "body", "sent")

    def __init__(self, key: tuple[str, str, str]):
        self.key = key
        self.topic = ""
        self.parts: list[bytes] = []
        self.runs: list[list[int]] = []  # [first, last] seqs
        self.ats: list[list] = []  # [ingest time, records]
        self.count = 0
        self.size = 2  # the brackets of the array
        self.body = b""
        self.sent = 0.0  # loop time

    def add(self, bodies: list[bytes], size: int, first: int, at: float) -> None:
        """Records first, first+1, … of one chunk (so of one ingest time), already encoded."""
        n = len(bodies)
        self.parts.extend(bodies)
        self.count += n
        self.size += size
        if self.runs and self.runs[-1][1] == first - 1:
            self.runs[-1][1] = first + n - 1
        else:
            self.runs.append([first, first + n - 1])
        if self.ats and self.ats[-1][0] == at:
            self.ats[-1][1] += n
        else:
            self.ats.append([at, n])

    def seal(self, pack: int) -> Sent:
        self.body = self.parts[0] if pack == 1 else b"[" + b",".join(self.parts) + b"]"
        self.parts = []
        return self


class JsonSink:
    def __init__(self, cfg: Any, sink: MqttConfig, on_command: Callable[[Incoming], Awaitable[Reply | None]] | None = None):
        self.cfg = cfg
        self.name = getattr(sink, "name", "mqtt")
        self.mqtt = sink
        self.feed: Feed | None = None
        self.on_command = on_command
        g = cfg.gateway
        base = self.base = f"{sink.topic_prefix}/{g.site}/{g.area}/{g.line}"
        self.status_topic = f"{base}/_gateway/{g.id}/status"
        self.command_filter = f"{base}/+/cmd/+"
        self.state = "starting"
        self.since = time.time()
        self.reason: str | None = None
        self.sent_messages = 0
        self.refused_messages = 0
        self._refusals_logged: set[tuple[str, int]] = set()
        self._traced = Traced()  # crash sites whose traceback is logged
        self.hooks: PahoHooks | None = None
        self.inflight = 0
        self.connects = 0
        self.client: aiomqtt.Client | None = None
        self.latency = Recent(LATENCY_ROWS)  # ingest -> PUBACK, seconds, of the most recent rows
        self.latency_hist = Histogram(LATENCY_BUCKETS)  # the same, every row since start, for /metrics
        self.last_dead: dict[str, Any] | None = None  # the latest dead-letter reason, for status
        self.published: Counter[tuple[str, str]] = Counter()  # records acknowledged, per (device, type)
        self.refused_rows: Counter[tuple[str, str]] = Counter()  # records dead-lettered, per (device, type)
        self.idle = asyncio.Event()  # set while nothing awaits a PUBACK
        self.idle.set()
        self._pending: dict[int, Sent] = {}  # mid -> message awaiting its PUBACK, in the order sent
        self._space = asyncio.Event()  # set when a PUBACK made room in the window
        self._broken: asyncio.Future | None = None  # per session: its end, when a PUBACK asks for it
        self.warnings: list[str] = []
        if sink.tls and not sink.tls.check_hostname:
            # The certificate is still verified against the CA, but any broker holding one passes.
            self.warnings.append("mqtt.tls.check_hostname is false: the broker's name is not checked against its certificate")
            log.warning("tls_hostname_unchecked", broker=f"{sink.host}:{sink.effective_port}", hint="set mqtt.tls.check_hostname: true")

    def health(self) -> dict[str, Any]:
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "mqtt",
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "broker": f"{self.mqtt.host}:{self.mqtt.effective_port}",
            "messages": self.sent_messages,
            "refused": self.refused_messages,
            "inflight": self.inflight,
            "connects": self.connects,
            "latency_ms": self.latency_ms(),
            "warnings": self.warnings,
            "last_dead_letter": self.last_dead,
        }

    def latency_ms(self) -> dict[str, float] | None:
        """Ingest-to-PUBACK latency of the most recent rows (p50, p99, max) in milliseconds."""
        if self.latency.rows < 2:
            return None
        p50, p99, top = self.latency.quantiles(0.5, 0.99, 1.0)
        return {"p50": round(p50 * 1000, 2), "p99": round(p99 * 1000, 2), "max": round(top * 1000, 2), "rows": self.latency.rows}

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
            # MQTT 5: keep the session (and the MES commands the broker queues for us) across
            # reconnects, as clean_session=False does in 3.1.1. aiomqtt's default starts clean on the
            # first connect of each client object, and we make a new one per connection.
            clean_start=False if m.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=_session_properties() if m.protocol == "5" else None,
            will=aiomqtt.Will(self.status_topic, offline, qos=1, retain=True),
            keepalive=m.keepalive,
            timeout=max(10.0, m.keepalive),
            tls_context=tls_context(m) if m.tls else None,
            max_inflight_messages=m.max_inflight,
        )

    async def run(self, feed: Feed) -> None:
        self.feed = feed
        await reconnecting(self, self._connection, self.mqtt)

    async def _connection(self) -> None:
        client = self._client()
        self.hooks = PahoHooks(client)
        async with client:
            self.hooks.connected()
            # aiomqtt warns on every publish beyond this many pending; we bound in-flight ourselves.
            client.pending_calls_threshold = 1 << 30
            try:
                await self._session(client)
            finally:
                self.feed.rewind()  # nothing of this connection awaits a PUBACK any more

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
        g = self.cfg.gateway
        await client.publish(
            self.status_topic,
            orjson.dumps({"gateway_id": g.id, "state": "online", "since": time.time()}),
            qos=1,
            retain=True,
        )
        await self._subscribe(client)
        # Connected once the session is complete: online announced, MES commands subscribed.
        self._set("connected", None)
        self._pending.clear()
        self._broken = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._commands(client))
                tg.create_task(self._watch(client.timeout))
                await self._send()
        except* aiomqtt.MqttError as eg:
            raise eg.exceptions[0] from None
        finally:
            self._pending.clear()  # rewound by run(): sent again on the next connection
            self._idle()
            if self._broken.done():
                self._broken.exception()  # retrieved: the session ended for this or for another reason
            else:
                self._broken.cancel()

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        if self.on_command is None:
            await client.unsubscribe(self.command_filter)
            return
        if self.mqtt.protocol == "5":
            granted = await client.subscribe(self.command_filter, options=SubscribeOptions(qos=1, retainAsPublished=True))
        else:
            granted = await client.subscribe(self.command_filter, qos=1)
        code = granted[0]
        if (code.is_failure if isinstance(code, ReasonCode) else code == 0x80) and self.connects == 1:
            log.error("commands_not_subscribed", topic=self.command_filter, reason=str(code), hint="check the broker's ACL: the gateway needs read access to its command topics")

    async def _commands(self, client: aiomqtt.Client) -> None:
        # Also the disconnect detector: the iterator raises MqttError when the connection drops.
        async for msg in client.messages:
            if self.on_command is None:
                continue
            props = msg.properties
            reply = await self.on_command(
                Incoming(
                    str(msg.topic),
                    bytes(msg.payload or b""),
                    bool(msg.retain),
                    getattr(props, "ResponseTopic", None),
                    getattr(props, "CorrelationData", None),
                )
            )
            if reply is not None:
                await self._reply(client, reply)

    async def _reply(self, client: aiomqtt.Client, reply: Reply) -> None:
        props = None
        if self.mqtt.protocol == "5" and reply.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = reply.correlation
        await client.publish(reply.topic, reply.payload, qos=1, properties=props)

    def topic(self, station: str, device: str, type_: str) -> str:
        return topic(self.base, station, device, type_)

    async def _send(self) -> None:
        most = self.mqtt.max_inflight
        feed = self.feed
        assert feed is not None and self.hooks is not None
        send, pending = self.hooks.send_then, self._pending
        loop = asyncio.get_running_loop()
        while True:
            chunks = await feed.next(FETCH)
            # Group by topic, keeping seq order inside each group.
            groups: dict[tuple[str, str, str], list[Chunk]] = {}
            for c in chunks:
                groups.setdefault((c.station, c.device, c.type), []).append(c)
            for key, cs in groups.items():
                topic = self.topic(*key)
                for msg in self._messages(cs, key):
                    while len(pending) >= most:
                        self._space.clear()
                        await self._space.wait()
                    msg.topic = topic
                    pending[send(topic, msg.body, self._acked)] = msg
                    msg.body = b""  # sent: only its seqs are kept for the PUBACK
                    msg.sent = loop.time()
                    self.inflight = len(pending)
                    self.idle.clear()

    async def _watch(self, timeout: float) -> None:
        """End the session when a PUBACK is overdue, or when a PUBACK asked for it (`_broken`)."""
        loop = asyncio.get_running_loop()
        while True:
            oldest = next(iter(self._pending.values()), None)  # in the order sent
            wait = timeout if oldest is None else oldest.sent + timeout - loop.time()
            if wait <= 0:
                raise aiomqtt.MqttError(f"no PUBACK within {timeout:g} s")
            try:
                async with asyncio.timeout(wait):
                    await asyncio.shield(self._broken)
            except TimeoutError:
                continue

    def _acked(self, mid: int, code: ReasonCode) -> None:
        """A PUBACK, called by paho's read path: acknowledge, dead-letter or retry the message's records."""
        msg = self._pending.pop(mid, None)
        if msg is None or self._broken is None or self._broken.done():
            return
        try:
            if not code.is_failure:
                for a, b in msg.runs:
                    self.feed.ack(a, b)
                self.sent_messages += 1
                self.published[msg.key[1], msg.key[2]] += msg.count
                now = time.time()
                for at, n in msg.ats:  # records of a chunk share their ingest time
                    self.latency_hist.observe(now - at, n)
                    self.latency.observe(now - at, n)
            elif code.value in RETRY_CODES:
                raise aiomqtt.MqttError(f"the broker refused a message for now (PUBACK 0x{code.value:02X} {code}); reconnecting to send it again")
            else:
                self._refused(msg, code)
        except Exception as exc:  # noqa: BLE001 - not contained here: it ends the session, like a task of it would
            self._broken.set_exception(exc)
            return
        self.inflight = len(self._pending)
        self._space.set()
        if not self._pending:
            self.idle.set()

    def _idle(self) -> None:
        self.inflight = 0
        self.idle.set()
        self._space.set()

    def _messages(self, chunks: list[Chunk], key: tuple[str, str, str]) -> Iterator[Sent]:
        """The records of one topic's chunks as messages of at most `max_pack` records and
        `max_payload` bytes (a JSON array; one object each when `max_pack` is 1); a record too big on
        its own is dead-lettered. A chunk that fits is taken whole: per record only its encoding."""
        pack, limit = self.mqtt.max_pack, self.mqtt.max_payload
        msg = Sent(key)
        for c in chunks:
            h = c.head
            bodies = [wire(seq, h, line) for seq, line in zip(range(c.first, c.last + 1), c.lines())]
            size = sum(map(len, bodies)) + len(bodies)
            if pack > 1 and msg.count + len(bodies) <= pack and msg.size + size <= limit:
                msg.add(bodies, size, c.first, c.at)
                continue
            for seq, body in zip(range(c.first, c.last + 1), bodies):
                if len(body) + (2 if pack > 1 else 0) > limit:
                    self._too_big(seq, len(body), key)
                    continue
                if msg.count and (msg.count >= pack or msg.size + len(body) + 1 > limit):
                    yield msg.seal(pack)
                    msg = Sent(key)
                msg.add([body], len(body) + 1, seq, c.at)
            if msg.count >= pack:
                yield msg.seal(pack)
                msg = Sent(key)
        if msg.count:
            yield msg.seal(pack)

    def _too_big(self, seq: int, size: int, key: tuple[str, str, str]) -> None:
        reason = f"record of {size} bytes exceeds mqtt.max_payload ({self.mqtt.max_payload})"
        log.error("record_dead_lettered", seq=seq, reason=reason)
        self.feed.dead(seq, seq, reason)
        self.refused_rows[key[1], key[2]] += 1
        self.last_dead = {"reason": reason, "at": time.time()}

    def _refused(self, msg: Sent, code: ReasonCode) -> None:
        """The broker refused the message for good: dead-letter its records with the reason; log once per
        topic and code (every refusal is counted in status as dead_lettered)."""
        reason = f"the broker refused the message: PUBACK reason code 0x{code.value:02X} ({code})"
        for a, b in msg.runs:
            self.feed.dead(a, b, reason)
        self.last_dead = {"reason": reason, "at": time.time()}
        self.refused_messages += 1
        self.refused_rows[msg.key[1], msg.key[2]] += msg.count
        if (msg.topic, code.value) not in self._refusals_logged:
            self._refusals_logged.add((msg.topic, code.value))
            log.error("message_refused", topic=msg.topic, rows=msg.count, reason=reason, hint="check the broker's ACL for this user and topic")

    def _crashed(self, exc: Exception) -> None:
        first = self._traced.first(exc)
        if self.state != "crashed":  # one event per state change; the traceback once per type
            log.error("publisher_crashed", error=describe(exc), exc_info=exc if first else None)
        self.state, self.since, self.reason = "crashed", time.time(), describe(exc)

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


def _session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY
    return props


def explain(exc: aiomqtt.MqttError, m) -> str:
    """Why the connection failed, in words that say what to check."""
    text = str(exc)
    tls = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", re.sub(r"^.*?\[SSL: [A-Z0-9_]+\]\s*", "", text))
    if "certificate verify failed" in text:
        if "expired" in text:
            return f"TLS: {tls}: the broker's certificate has expired; renew it on the broker"
        if "not yet valid" in text:
            return f"TLS: {tls}: the broker's certificate is not valid yet; check the clocks of this PC and the broker"
        if "mismatch" in text:
            return f"TLS: {tls}: the broker's certificate does not name {m.host!r} (mqtt.host)"
        return f"TLS: {tls}: the broker's certificate is not signed by a CA in mqtt.tls.ca_file ({m.tls.ca_file})"
    if "alert certificate required" in text:
        return f"TLS: {tls}: the broker requires a client certificate; set mqtt.tls.cert_file and key_file"
    if re.search(r"alert (unknown ca|bad certificate|certificate unknown|certificate expired)", text):
        return f"TLS: {tls}: the broker rejected our client certificate (mqtt.tls.cert_file {m.tls.cert_file})"
    code = getattr(exc, "rc", None)
    if isinstance(exc, MqttConnectError) and getattr(code, "value", code) in (4, 5, 134, 135):
        source = "password_file" if m.password_file else "password_credential" if m.password_credential else "no password set"
        return f"the broker refused the login ({text}): check mqtt.username ({m.username}) and the password ({source})"
    return text


def topic(base: str, station: str, device: str, type_: str) -> str:
    """`<base>/<station>/<device>/<type>`, or `<base>/<station>/context` for the station's own records."""
    return f"{base}/{station}/context" if not device else f"{base}/{station}/{device}/{type_}"


def runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Ascending seqs as (first, last) runs of consecutive ones."""
    out: list[tuple[int, int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def tls_context(m: MqttConfig) -> ssl.SSLContext:
    t = m.tls
    assert t is not None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(t.ca_file))
    ctx.check_hostname = t.check_hostname
    if t.cert_file:
        password = t.key_password_file.read_text().splitlines()[0] if t.key_password_file else None
        ctx.load_cert_chain(str(t.cert_file), str(t.key_file) if t.key_file else None, password=password)
    return ctx
