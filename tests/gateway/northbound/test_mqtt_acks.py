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
        self.acked.append((first, last))


def _pending(sink: JsonSink, mid: int, seqs: list[int], sent: float) -> None:
    sink._pending[mid] = Sent("t", KEY, seqs, [0.0] * len(seqs), sent)


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
    assert sink.feed.acked == [(5, 7), (9, 9)] and sink.inflight == 1 and not sink.idle.is_set()
    sink._acked(2, ReasonCode(PacketTypes.PUBACK, identifier=0x10))  # "no matching subscribers": delivered
    assert sink.feed.acked[-1] == (10, 10) and sink.idle.is_set() and sink.published["press", "telemetry"] == 5


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
