"""The serial scanner driver against a simulated scanner on a real pty."""

import pytest

from drivers.scanner_serial.config import ScannerSerialConfig
from gateway.errors import NotConnected
from simulators.scanner import SerialScanner
from tests.conftest import eventually


def cfg(link, **kw):
    return ScannerSerialConfig(kind="scanner_serial", name="sc1", port=link, **kw)


async def take(it, n):
    return [await anext(it) for _ in range(n)]


@pytest.fixture
async def sim(tmp_path):
    s = SerialScanner(tmp_path / "scanner0")
    s.plug()
    yield s
    s.unplug()


async def test_scans_raw_bytes_and_hostack(sim, tmp_path):
    drv = cfg(tmp_path / "scanner0", feedback="honeywell").build()
    await drv.connect()
    it = drv.readings()
    sim.scan("]C10109501101020917\x1d10L1")
    sim.send(b"]C0WO-1\r\n")
    a, b = await take(it, 2)
    assert (a.value, a.raw, a.type, a.quality) == ("]C10109501101020917\x1d10L1", b"]C10109501101020917\x1d10L1", "scan", "good")
    assert b.value == "]C0WO-1"
    await a.ack({"status": "accepted", "reason_code": "ok"})
    await b.ack({"status": "unassigned", "reason_code": "no_active_order"})
    assert [await sim.next_ack(5), await sim.next_ack(5)] == ["good", "bad"]
    await drv.aclose()


async def test_extra_feedback_outputs(sim, tmp_path):
    seen = []

    async def light(outcome):
        seen.append(outcome["status"])

    drv = cfg(tmp_path / "scanner0").build()
    drv.outputs.append(light)
    await drv.connect()
    it = drv.readings()
    sim.scan("X")
    (r,) = await take(it, 1)
    await r.ack({"status": "duplicate"})
    assert seen == ["duplicate"] and drv.counters["feedback_sent"] == 0
    await drv.aclose()


async def test_partial_scan_dropped_after_silence(sim, tmp_path):
    drv = cfg(tmp_path / "scanner0", partial_timeout=0.05).build()
    await drv.connect()
    it = drv.readings()
    sim.send(b"]C0WO-")
    (r,) = await take(it, 1)
    assert (r.quality, r.raw) == ("bad", b"]C0WO-") and "partial" in r.reason
    sim.scan("NEXT")
    assert (await take(it, 1))[0].value == "NEXT"
    assert drv.counters["stale_partials"] == 1
    await drv.aclose()


async def test_unplug_replug_same_path(sim, tmp_path):
    drv = cfg(tmp_path / "scanner0", feedback="honeywell").build()
    await drv.connect()
    it = drv.readings()
    sim.scan("ONE")
    (one,) = await take(it, 1)
    sim.send(b"TW")  # half a scan, then the cable is pulled
    # In the stream's buffer (a pty may discard what the kernel has not passed on yet at the unplug).
    await eventually(lambda: bytes(drv._reader._buffer) == b"TW", what="the half scan to reach the port's stream")
    sim.unplug()
    # The port's error reaches the stream while the half scan still sits in its buffer (the driver
    # is not reading: its last scan awaits its answer). It is reported all the same.
    await eventually(lambda: drv._reader.exception() is not None, what="the port's error")
    (lost,) = await take(it, 1)
    assert (lost.quality, lost.raw) == ("bad", b"TW")
    with pytest.raises(NotConnected):
        await anext(it)
    await one.ack({"status": "accepted"})  # the answer for a scan of the old connection is lost, not raised
    assert drv.counters["feedback_lost"] == 1 and drv.counters["stale_partials"] == 1
    await drv.aclose()
    with pytest.raises(NotConnected):
        await drv.connect()  # nothing behind the path while unplugged
    sim.plug()
    await drv.connect()
    it = drv.readings()
    sim.scan("THREE")
    (three,) = await take(it, 1)
    assert three.value == "THREE"
    await three.ack({"status": "accepted"})
    assert await sim.next_ack(5) == "good"
    await drv.aclose()


async def test_stx_etx_framing_with_garbage(tmp_path):
    sim = SerialScanner(tmp_path / "s", framing="stx_etx")
    sim.plug()
    drv = cfg(tmp_path / "s", framing="stx_etx").build()
    await drv.connect()
    it = drv.readings()
    sim.send(b"\x02A\x03zz\x02B\x03")
    a, junk, b = await take(it, 3)
    assert (a.value, junk.quality, junk.raw, b.value) == ("A", "bad", b"zz", "B")
    assert drv.counters == {**drv.counters, "scans": 2, "framing_errors": 1}
    await drv.aclose()
    sim.unplug()
