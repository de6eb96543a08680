"""A Sparkplug B host application for tests, on a real broker.

It decodes with esio-spb-builder (its own sparkplug_b_pb2 and PacketDecoder, from PyPI), never with
the gateway's code, and keeps the books a host keeps: STATE (retained, Will offline), bdSeq per
session, seq without gaps, aliases from births, historical flags, rebirth requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
from esio_spb_builder.core import sparkplug_b_pb2 as spb
from esio_spb_builder.packets.builders import PacketDecoder


@dataclass
class Value:
    device: str
    name: str
    value: Any
    ts: int
    historical: bool
    props: dict[str, Any]
    bd_seq: int


@dataclass
class Message:
    kind: str  # NBIRTH, DBIRTH, DDATA, DDEATH, NDEATH …
    device: str | None
    seq: int | None
    decoded: dict[str, Any]
    payload: Any  # the esio protobuf Payload
    qos: int
    retain: bool


@dataclass
class Books:
    messages: list[Message] = field(default_factory=list)
    values: list[Value] = field(default_factory=list)
    gaps: list[tuple[int, int, str]] = field(default_factory=list)  # (expected, got, topic)
    unresolved: list[tuple[str, int]] = field(default_factory=list)  # (device, alias) never born
    bd_seqs: list[int] = field(default_factory=list)  # of each NBIRTH, in order
    aliases: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # alias -> (device, name, datatype)

    def of(self, kind: str) -> list[Message]:
        return [m for m in self.messages if m.kind == kind]


class Host:
    def __init__(self, port: int, group: str, host_id: str | None = "scada", qos: int = 1, persistent: bool = False, reconnect: float = 0.1, **client_args: Any):
        """`persistent`: a session the broker keeps (and queues QoS 1 messages for) across reconnects;
        `reconnect`: seconds between connection attempts; `client_args` go to aiomqtt.Client (TLS, login)."""
        self.reconnect = reconnect
        self.client_args = client_args
        self.port = port
        self.persistent = persistent
        self.group = group
        self.host_id = host_id
        self.qos = qos
        self.books = Books()
        self.client: aiomqtt.Client | None = None
        self._seq: int | None = None
        self._bd: int | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self.client_id = f"test-host-{os.getpid()}-{time.monotonic_ns()}"

    @property
    def state_topic(self) -> str:
        return f"spBv1.0/STATE/{self.host_id}"

    async def __aenter__(self) -> Host:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(10):
            await self._ready.wait()
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self, online: bool = True) -> None:
        will = aiomqtt.Will(self.state_topic, self._state(False), qos=1, retain=True) if self.host_id else None
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.client_id, clean_session=not self.persistent, will=will, **self.client_args) as c:
                    self.client = c
                    await c.subscribe(f"spBv1.0/{self.group}/#", qos=self.qos)
                    if self.host_id:
                        await c.publish(self.state_topic, self._state(True), qos=1, retain=True)
                    self._ready.set()
                    async for msg in c.messages:
                        self._take(str(msg.topic), bytes(msg.payload), msg.qos, bool(msg.retain))
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(self.reconnect)

    @staticmethod
    def _state(online: bool) -> bytes:
        return orjson.dumps({"online": online, "timestamp": round(time.time() * 1000)})

    async def say(self, online: bool, timestamp: int | None = None) -> None:
        """Publish this host's STATE (retained, as a host does on its way up or down)."""
        ts = round(time.time() * 1000) if timestamp is None else timestamp
        await self.client.publish(self.state_topic, orjson.dumps({"online": online, "timestamp": ts}), qos=1, retain=True)

    async def rebirth(self, node: str) -> None:
        p = spb.Payload(timestamp=round(time.time() * 1000))
        p.metrics.add(name="Node Control/Rebirth", datatype=spb.Boolean, boolean_value=True)
        await self.client.publish(f"spBv1.0/{self.group}/NCMD/{node}", p.SerializeToString(), qos=0)

    def _take(self, topic: str, data: bytes, qos: int, retain: bool) -> None:
        parts = topic.split("/")
        kind = parts[2]
        if kind in ("NCMD", "DCMD") or parts[1] == "STATE":
            return
        device = parts[4] if len(parts) > 4 else None
        payload = spb.Payload.FromString(data)
        decoded = PacketDecoder.decode(data)
        b = self.books
        b.messages.append(Message(kind, device, decoded["seq"], decoded, payload, qos, retain))
        if kind == "NBIRTH":
            self._bd = PacketDecoder.extract_bdseq(data)
            b.bd_seqs.append(self._bd)
            self._seq = decoded["seq"]
            if self._seq != 0:
                b.gaps.append((0, self._seq, topic))
        elif kind != "NDEATH":
            expected = None if self._seq is None else (self._seq + 1) % 256
            if expected is not None and decoded["seq"] != expected:
                b.gaps.append((expected, decoded["seq"], topic))
            self._seq = decoded["seq"]
        if kind == "DBIRTH":
            for m in decoded["metrics"]:
                b.aliases[m["alias"]] = (device, m["name"], m["datatype"])
        if kind == "DDATA":
            for m, raw in zip(decoded["metrics"], payload.metrics):
                born = b.aliases.get(m["alias"])
                if born is None or born[0] != device:
                    b.unresolved.append((device, m["alias"]))
                    continue
                value = None if raw.is_null else m.get("value")
                b.values.append(Value(device, born[1], value, m["timestamp"], raw.is_historical, m.get("properties", {}), self._bd))
        self._changed.set()

    async def wait(self, predicate, timeout: float = 20.0, what: str = "") -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.books):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            kinds = [m.kind for m in self.books.messages[-8:]]
            raise AssertionError(f"timed out waiting for {what}; {len(self.books.messages)} messages, last kinds {kinds}, {len(self.books.values)} values") from None
