"""The edge node's sessions against a real mosquitto and an independent host, fed from memory.

The capture log's feed is stood in for by `MemoryFeed` (same Protocol); the scenario tests run
the real gateway process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import orjson
import pytest

from gateway.northbound.sink import Chunk
from gateway.northbound.sparkplug.config import SparkplugConfig
from gateway.northbound.sparkplug.sink import SparkplugSink
from tests.conftest import eventually
from tests.pki import CONSUMER_PASSWORD, password_file, tls_broker
from tests.sparkplug_host import Host

GROUP = "plant1"
NODE = "gw-test"


class MemoryFeed:
    name = "sparkplug"

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.read_to = 0
        self.settled: set[int] = set()
        self.dead_letters: dict[int, str] = {}
        self.state: dict[str, str] = {}
        self.new = asyncio.Event()
        self.seq = 0

    def add(self, values, *, tag="temp", device="plc1", type="telemetry", at=None, **fields) -> tuple[int, int]:
        head = {"type": type, "station": "st10", "device": device, "tag": tag, "unit": "degC", "quality": "good", "reason": None,
                "work_order": "WO-1", "lot": "L1", "context_id": "c1", **fields}
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        items = b"\n".join(orjson.dumps({"value": v, "ts": ts}) for v in values)
        first = self.seq + 1
        self.seq += len(values)
        self.chunks.append(Chunk(first, self.seq, type, "st10", device, time.time() if at is None else at, orjson.dumps(head), items))
        self.new.set()
        return first, self.seq

    async def next(self, limit: int) -> list[Chunk]:
        while True:
            self.new.clear()
            out = [c for c in self.chunks if c.last > self.read_to]
            if out:
                self.read_to = out[-1].last
                return out
            await self.new.wait()

    def ack(self, first: int, last: int) -> None:
        self.settled.update(range(first, last + 1))

    def dead(self, first: int, last: int, reason: str) -> None:
        self.settled.update(range(first, last + 1))
        self.dead_letters.update(dict.fromkeys(range(first, last + 1), reason))

    def rewind(self) -> None:
        self.read_to = self.cursor

    @property
    def cursor(self) -> int:
        s = 0
        while s + 1 in self.settled:
            s += 1
        return s

    def recall(self, key: str) -> str | None:
        return self.state.get(key)

    def remember(self, key: str, value: str) -> None:
        self.state[key] = value

    async def sync(self) -> None:
        return None

    @property
    def backlog(self) -> int:
        return self.seq - len(self.settled)


@contextlib.asynccontextmanager
async def running(broker, feed, **cfg):
    sink = SparkplugSink(SparkplugConfig(host="127.0.0.1", port=broker.port, group_id=GROUP, reconnect_max=0.2, **cfg), NODE, {"st10": "station-st10"})
    task = asyncio.create_task(sink.run(feed))
    try:
        yield sink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def values(books, name="temp"):
    return [v.value for v in books.values if v.name == name]


async def test_births_then_data_with_aliases_seq_and_properties(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed) as sink:
        await eventually(lambda: sink.state == "connected")
        feed.add([1.5, 2.5, 3.5])
        await host.wait(lambda b: len(b.values) == 3, what="three values")
        b = host.books
        assert [m.kind for m in b.messages] == ["NBIRTH", "DBIRTH", "DDATA"]
        assert b.bd_seqs == [0] and not b.gaps and not b.unresolved
        assert all(m.qos == 0 and not m.retain for m in b.messages)
        assert values(b) == [1.5, 2.5, 3.5] and not any(v.historical for v in b.values)
        first, later = b.values[0].props, b.values[1].props
        assert first == {"Quality": 192, "work_order": "WO-1", "lot": "L1", "context_id": "c1", "engUnit": "degC"}
        assert later == {}  # live values carry what changed since the metric's last value
        await eventually(lambda: feed.cursor == 3, what="the fence acknowledging the batch")
        assert sink.health()["state"] == "connected" and feed.state == {"bdSeq": "0"}


async def test_a_live_value_carries_the_properties_that_changed_and_nulls_those_gone(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed) as sink:
        await eventually(lambda: sink.state == "connected")
        feed.add([1.0])
        feed.add([None], quality="bad", reason="timeout")
        feed.add([2.0])
        feed.add([3.0], lot="L2")
        await host.wait(lambda b: len(b.values) == 4)
        props = [v.props for v in host.books.values]
        assert props[1] == {"Quality": 0, "reason": "timeout"} and host.books.values[1].value is None
        assert props[2] == {"Quality": 192}  # and reason null: esio's decoder leaves null properties out
        assert host.books.values[2].props == {"Quality": 192} and props[3] == {"lot": "L2"}
        reason = host.books.of("DDATA")[2].payload.metrics[0].properties
        assert list(reason.keys) == ["Quality", "reason"] and reason.values[1].is_null


async def test_a_new_metric_or_datatype_births_the_device_again(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed):
        feed.add([1.0])
        await host.wait(lambda b: len(b.values) == 1)
        feed.add([7], tag="count")
        feed.add(["text"], tag="temp")
        await host.wait(lambda b: len(b.values) == 3, what="three values")
        births = [m for m in host.books.of("DBIRTH")]
        assert len(births) == 3
        assert {m["name"]: m["datatype"] for m in births[-1].decoded["metrics"]} == {"temp": 12, "count": 4}
        assert values(host.books) == [1.0, "text"] and values(host.books, "count") == [7]
        assert not host.books.gaps and not host.books.unresolved


async def test_too_large_or_malformed_records_are_dead_lettered_and_the_rest_goes(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed, max_payload=1024) as sink:
        await eventually(lambda: sink.state == "connected")
        feed.add([float(i) for i in range(100)])  # more than 1024 bytes in one message: split
        big, _ = feed.add(["x" * 2000], tag="note")
        feed.chunks.append(Chunk(big + 1, big + 1, "telemetry", "st10", "plc1", time.time(), b'{"tag": "t"}', b'{"value": 1, "ts": "yesterday"}'))
        feed.seq += 1
        feed.add([7.0])
        await host.wait(lambda b: len(b.values) == 101)
        await eventually(lambda: feed.cursor == feed.seq)
        assert values(host.books)[-1] == 7.0 and len(host.books.of("DDATA")) > 2
        assert "exceeds max_payload (1024)" in feed.dead_letters[big]
        assert "not expressible as Sparkplug metrics" in feed.dead_letters[big + 1]
        assert sink.counts["points"] == 101 and not host.books.gaps


async def test_seq_wraps_from_255_to_0_without_gaps(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed, max_pack=1):
        feed.add([float(i) for i in range(300)])
        await host.wait(lambda b: len(b.values) == 300, what="300 values")
        seqs = [m.seq for m in host.books.messages]
        assert seqs[:2] == [0, 1] and 255 in seqs and seqs[seqs.index(255) + 1] == 0
        assert not host.books.gaps and values(host.books) == [float(i) for i in range(300)]


async def test_rebirth_command_gives_nbirth_and_every_dbirth_with_the_same_bdseq(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed) as sink:
        feed.add([1.0])
        feed.add(["x"], type="scan", device="wedge1", tag="barcode", status="accepted", reason_code=None)
        await host.wait(lambda b: len(b.values) == 2)
        await host.rebirth(NODE)
        await host.wait(lambda b: len(b.of("NBIRTH")) == 2, what="the rebirth")
        await host.wait(lambda b: len(b.of("DBIRTH")) == 4, what="both devices born again")
        assert host.books.bd_seqs == [0, 0] and not host.books.gaps
        assert {m.device for m in host.books.of("DBIRTH")[2:]} == {"plc1", "station-st10"}
        assert sink.counts["rebirths"] == 1


async def test_a_garbage_command_is_refused_and_the_session_goes_on(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed) as sink:
        feed.add([1.0])
        await host.wait(lambda b: len(b.values) == 1)
        await host.client.publish(f"spBv1.0/{GROUP}/NCMD/{NODE}", b"\xff\x00garbage", qos=0)
        await eventually(lambda: sink.counts["commands_refused"] == 1)
        feed.add([2.0])
        await host.wait(lambda b: len(b.values) == 2)
        assert sink.connects == 1


async def test_device_down_is_a_ddeath_and_back_a_dbirth(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed) as sink:
        feed.add([1.0])
        await host.wait(lambda b: len(b.values) == 1)
        sink.device_state("plc1", "down")
        await host.wait(lambda b: len(b.of("DDEATH")) == 1, what="DDEATH")
        sink.device_state("plc1", "connected")
        await host.wait(lambda b: len(b.of("DBIRTH")) == 2, what="DBIRTH again")
        assert [m.kind for m in host.books.messages][-2:] == ["DDEATH", "DBIRTH"] and not host.books.gaps


async def test_primary_host_gates_births_and_its_outage_makes_data_historical(broker):
    feed = MemoryFeed()
    feed.add([1.0, 2.0])
    async with Host(broker.port, GROUP, host_id="scada") as host, running(broker, feed, primary_host_id="scada") as sink:
        await host.wait(lambda b: len(b.values) == 2, what="the backlog after the host came online")
        assert [v.historical for v in host.books.values] == [True, True]  # captured before the session was live
        await eventually(lambda: feed.cursor == 2)
        await host.say(False)
        await eventually(lambda: sink.state == "waiting for host", what="the node waiting for its host")
        assert host.books.of("NDEATH")[-1].decoded["metrics"][0]["value"] == 0  # said NDEATH of bdSeq 0 before leaving
        feed.add([3.0, 4.0])
        assert len(host.books.values) == 2  # their values arrive below, historical: they waited for the host
        await host.say(True)
        await host.wait(lambda b: len(b.values) == 4, what="the data of the outage")
        assert host.books.bd_seqs == [0, 1] and [v.historical for v in host.books.values[2:]] == [True, True]
        assert values(host.books) == [1.0, 2.0, 3.0, 4.0]
        await eventually(lambda: sink.state == "connected")
        feed.add([5.0])
        await host.wait(lambda b: len(b.values) == 5)
        assert host.books.values[-1].historical is False


async def test_an_older_offline_state_is_ignored(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id="scada") as host, running(broker, feed, primary_host_id="scada") as sink:
        feed.add([1.0])
        await host.wait(lambda b: len(b.values) == 1)
        await host.say(False, timestamp=1)
        await host.rebirth(NODE)  # after the STATE on the same connection: answered once the STATE was read
        await host.wait(lambda b: len(b.of("NBIRTH")) == 2)
        feed.add([2.0])
        await host.wait(lambda b: len(b.values) == 2)
        assert sink.connects == 1 and sink.state == "connected" and host.books.bd_seqs == [0, 0]


async def test_broker_outage_replays_as_historical_with_a_new_bdseq_at_qos_1(broker):
    # At QoS 0 a host that resubscribes after the node has re-sent would miss that data (README):
    # the QoS 1 option and a persistent host session close that gap.
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, persistent=True) as host, running(broker, feed, primary_host_id="scada", data_qos=1) as sink:
        await eventually(lambda: sink.state == "connected")
        feed.add([1.0])
        await host.wait(lambda b: len(b.values) == 1)
        await eventually(lambda: feed.cursor == 1)
        broker.stop()
        await eventually(lambda: sink.state == "disconnected")
        feed.add([2.0, 3.0])
        broker.start()
        await host.wait(lambda b: len(b.values) == 3, timeout=30, what="the replay")
        assert host.books.bd_seqs == [0, 1] and [v.historical for v in host.books.values] == [False, True, True]
        assert not host.books.gaps and all(m.qos == 1 for m in host.books.of("DDATA"))


async def test_after_a_broker_crash_the_node_waits_for_its_host_to_announce_itself_anew(broker):
    # A broker that crashes publishes no Will: the host's retained online STATE comes back from its
    # persistence file, though the host is not subscribed yet (it reconnects 1 s later).
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, reconnect=1.0) as host, running(broker, feed, primary_host_id="scada", host_grace=20) as sink:
        await eventually(lambda: sink.state == "connected")
        announced = time.time()
        feed.add([1.0])
        await host.wait(lambda b: len(b.values) == 1)
        db = broker.folder / "mosquitto.db"
        await eventually(lambda: db.exists() and db.stat().st_mtime > announced + 0.1, what="the broker saving the retained STATE")
        broker.proc.kill()
        broker.proc.wait()
        await eventually(lambda: sink.state == "disconnected")
        feed.add([2.0, 3.0])
        broker.start()
        await host.wait(lambda b: len(b.values) == 3, timeout=15, what="the replay, after the host's new STATE")
        assert host.books.bd_seqs == [0, 1] and [v.historical for v in host.books.values] == [False, True, True]
        assert not host.books.gaps and sink.connects == 2


async def test_mqtt_5_sessions_work_alike(broker):
    feed = MemoryFeed()
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed, protocol="5") as sink:
        await eventually(lambda: sink.state == "connected")
        feed.add([1.0, 2.0])
        await host.wait(lambda b: len(b.values) == 2)
        assert [m.kind for m in host.books.messages] == ["NBIRTH", "DBIRTH", "DDATA"] and not host.books.gaps


async def test_tls_and_login_and_a_wrong_ca_said_plainly(tmp_path, pki, brokers):
    tls_b = brokers(tls_broker(tmp_path, pki, mutual=True))
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client), str(pki.key(pki.client)))
    login = {"username": "gw-test", **password_file(tmp_path)}
    client = {"ca_file": str(pki.client.parent / "ca.pem"), "cert_file": str(pki.client), "key_file": str(pki.key(pki.client))}
    feed = MemoryFeed()
    async with Host(tls_b.port, GROUP, host_id=None, tls_context=ctx, username="consumer", password=CONSUMER_PASSWORD) as host:
        async with running(tls_b, feed, tls={**client, "ca_file": str(pki.other_ca)}, **login) as sink:
            await eventually(lambda: sink.state == "disconnected", what="the refused TLS handshake")
            assert "mqtt.tls.ca_file" in sink.health()["reason"] and str(pki.other_ca) in sink.health()["reason"]
        async with running(tls_b, feed, tls={**client, "ca_file": str(pki.ca)}, **login) as sink:
            feed.add([1.0])
            await host.wait(lambda b: len(b.values) == 1)
            assert sink.health()["connects"] == 1


async def test_a_bug_in_a_session_costs_a_reconnect_and_loses_nothing(broker, monkeypatch):
    real, calls = SparkplugSink._births, []

    def births(self):
        calls.append(1)
        if len(calls) <= 2:
            raise ZeroDivisionError("a bug nobody listed")
        real(self)

    monkeypatch.setattr(SparkplugSink, "_births", births)
    feed = MemoryFeed()
    feed.add([1.0, 2.0])
    async with Host(broker.port, GROUP, host_id=None) as host, running(broker, feed) as sink:
        await host.wait(lambda b: len(b.values) == 2)
        assert len(calls) == 3 and sink.connects == 3 and values(host.books) == [1.0, 2.0]
        assert host.books.bd_seqs == [2]  # each crashed session had its CONNECT, and its bdSeq


async def test_bdseq_is_kept_across_restarts():
    feed = MemoryFeed()
    feed.remember("bdSeq", "255")
    sink = SparkplugSink(SparkplugConfig(host="127.0.0.1", group_id=GROUP), NODE, {})
    assert sink._next_bd_seq(feed) == 0 and sink._next_bd_seq(feed) == 1 and feed.recall("bdSeq") == "1"


@pytest.mark.parametrize("offline_first", [False, True])
async def test_a_fence_acknowledges_its_batch_unless_the_host_went_offline_before_it(offline_first):
    """The cursor rule on its own: the STATE that arrives before the UNSUBACK withholds the batch."""
    feed = MemoryFeed()
    sink = SparkplugSink(SparkplugConfig(host="127.0.0.1", group_id=GROUP, primary_host_id="scada"), NODE, {})
    unsuback, out = asyncio.Event(), asyncio.Event()

    class Connection:
        async def unsubscribe(self, topic):
            assert topic == f"spBv1.0/{GROUP}/FENCE/{NODE}"
            out.set()
            await unsuback.wait()

    class State:
        retain = False
        topic, payload = "spBv1.0/STATE/scada", orjson.dumps({"online": False, "timestamp": 5})

    window = asyncio.Semaphore(1)
    await window.acquire()
    task = asyncio.create_task(sink._settle(Connection(), feed, window, [([1, 2], None), ([3], None)], sink.epoch))
    await out.wait()
    if offline_first:
        sink._on_state(None, None, State)
    unsuback.set()
    await task
    assert feed.settled == (set() if offline_first else {1, 2, 3}) and not window.locked()
