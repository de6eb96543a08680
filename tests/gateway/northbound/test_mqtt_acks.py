"""The JSON sink's PUBACK handling without a task per message: an overdue PUBACK, a PUBACK that asks
to retry and a fault in acknowledging each end the session (run() reconnects and the feed resends)."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway import config
from gateway.northbound.mqtt import JsonSink, Sent
from tests.conftest import write_config

KEY = ("st10", "press", "telemetry")


@pytest.fixture
async def sink(tmp_path) -> JsonSink:
    cfg = config.load(write_config(tmp_path, 1883, []))
    s = cfg.northbound[0].build(cfg, None)
    s._broken = asyncio.get_running_loop().create_future()
    return s


class Feed:
    """Acknowledgements as the sink makes them; `fail` makes ack raise (a bug, or a library fault)."""

    def __init__(self, fail: Exception | None = None):
        self.acked: list[tuple[int, int]] = []
        self.fail = fail

    def ack(self, first: int, last: int) -> None:
        if self.fail:
            raise self.fail
        self.acked.append([first, last])


def _pending(sink: JsonSink, mid: int, seqs: list[int], sent: float) -> None:
    msg = Sent(KEY)
    for s in seqs:
        msg.add([b"{}"], 3, s, 0.0)
    msg.sent = sent
    sink._pending[mid] = msg.seal(100)


async def test_an_overdue_puback_ends_the_session(sink):
    loop = asyncio.get_running_loop()
    _pending(sink, 1, [5, 6], loop.time())
    with pytest.raises(aiomqtt.MqttError, match="no PUBACK within 0.2 s"):
        await asyncio.wait_for(sink._watch(0.2), 5)


async def test_pubacks_acknowledge_runs_and_free_the_window(sink):
    sink.feed = Feed()
    loop = asyncio.get_running_loop()
    _pending(sink, 1, [5, 6, 7, 9], loop.time())
    _pending(sink, 2, [10], loop.time())
    sink.idle.clear()
    sink._acked(1, ReasonCode(PacketTypes.PUBACK, identifier=0))
    assert sink.feed.acked == [[5, 7], [9, 9]] and sink.inflight == 1 and not sink.idle.is_set()
    sink._acked(2, ReasonCode(PacketTypes.PUBACK, identifier=0x10))  # "no matching subscribers": delivered
    assert sink.feed.acked[-1] == [10, 10] and sink.idle.is_set() and sink.published["press", "telemetry"] == 5


async def test_a_puback_asking_to_retry_ends_the_session_with_nothing_acknowledged(sink):
    sink.feed = Feed()
    _pending(sink, 1, [5], asyncio.get_running_loop().time())
    sink._acked(1, ReasonCode(PacketTypes.PUBACK, identifier=0x97))  # quota exceeded
    with pytest.raises(aiomqtt.MqttError, match="0x97"):
        await asyncio.wait_for(sink._watch(30), 5)
    assert sink.feed.acked == []


async def test_a_fault_while_acknowledging_ends_the_session_with_it(sink):
    sink.feed = Feed(KeyError("feed bug"))
    _pending(sink, 1, [5], asyncio.get_running_loop().time())
    sink._acked(1, ReasonCode(PacketTypes.PUBACK, identifier=0))
    with pytest.raises(KeyError, match="feed bug"):
        await asyncio.wait_for(sink._watch(30), 5)


# --- packing: every record once, in order, within max_pack and max_payload --------------------------

import orjson  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gateway.northbound.sink import Chunk  # noqa: E402
from tests.drivers.fuzz import fuzz  # noqa: E402


class Dead(Feed):
    def __init__(self):
        super().__init__()
        self.refused: list[tuple[int, int, str]] = []

    def dead(self, first: int, last: int, reason: str) -> None:
        self.refused.append((first, last, reason))


def _chunks(sizes: list[list[int]]) -> list[Chunk]:
    out, seq = [], 1000
    for i, pads in enumerate(sizes):
        items = b"\n".join(orjson.dumps({"tag": "t", "pad": "x" * p}) for p in pads)
        out.append(Chunk(seq, seq + len(pads) - 1, "telemetry", "st10", "press", 100.0 + i // 2, b'{"type":"telemetry"}', items))
        seq += len(pads) + 3  # a gap: other devices' seqs
    return out


@fuzz
@given(st.lists(st.lists(st.integers(0, 3000), min_size=1, max_size=30), min_size=1, max_size=6),
       st.sampled_from([1, 2, 7, 100]), st.integers(1024, 20_000))
def test_fuzz_messages_carry_every_record_once_within_the_limits(tmp_path_factory, sizes, pack, payload):
    cfg = config.load(write_config(tmp_path_factory.mktemp("c"), 1883, [], mqtt={"max_pack": pack, "max_payload": payload}))
    sink = cfg.northbound[0].build(cfg, None)
    sink.feed = dead = Dead()
    chunks = _chunks(sizes)
    msgs = list(sink._messages(chunks, KEY))
    sent = []
    for m in msgs:
        assert 1 <= m.count <= pack and len(m.body) <= payload
        body = orjson.loads(m.body)
        recs = [body] if pack == 1 else body
        assert len(recs) == m.count == sum(b - a + 1 for a, b in m.runs) == sum(n for _, n in m.ats)
        assert [r["seq"] for r in recs] == [s for a, b in m.runs for s in range(a, b + 1)]
        sent.extend(r["seq"] for r in recs)
    refused = [s for a, b, _ in dead.refused for s in range(a, b + 1)]
    every = [s for c in chunks for s in range(c.first, c.last + 1)]
    assert sorted(sent + refused) == every and sent == sorted(sent)
    assert all("exceeds mqtt.max_payload" in r for *_, r in dead.refused)
