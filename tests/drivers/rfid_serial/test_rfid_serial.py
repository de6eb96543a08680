"""RFID drivers against simulated readers on real ptys."""

import time

import pytest

from drivers.rfid_serial import driver as rfid_driver
from drivers.rfid_serial.config import RfidSerialConfig
from gateway.errors import NotConnected
from simulators.rfid import CfruReader, Rdm6300Reader

EPC = "3074257BF7194E4000001A85"
EPC2 = "3114257BF4499602D2000000"


def cfg(link, **kw):
    return RfidSerialConfig(kind="rfid_serial", name="rf1", port=link, **{"protocol": "cfru", "poll_interval": 0.002, "hold": 0.3, **kw})


@pytest.fixture
async def reader(tmp_path):
    r = CfruReader(tmp_path / "rfid0")
    r.plug()
    yield r
    r.unplug()


async def collect(it, until, limit=1000):
    out = []
    async for r in it:
        out.append(r)
        if until(out) or len(out) >= limit:
            return out


async def test_200_reads_become_one_window(reader, tmp_path):
    rssi = [0x40 + (i * 7) % 0x30 for i in range(200)]
    reader.add(EPC, antenna=2, rssi=rssi, reads=200)
    drv = cfg(tmp_path / "rfid0", report="summary").build()
    await drv.connect()
    got = await collect(drv.readings(), lambda out: any(r.fields and r.fields.get("event") == "window" for r in out))
    (w,) = got
    assert (w.value, w.type, w.quality) == (EPC, "rfid", "good")
    assert w.fields["read_count"] == 200 and w.fields["rssi_max"] == max(rssi) and w.fields["antennas"] == [2]
    assert w.fields["last_seen"] >= w.fields["first_seen"]
    assert drv.counters["reads"] == 200 and reader.inventories >= 200
    await drv.aclose()


async def test_first_sight_and_summary_over_antennas(reader, tmp_path):
    reader.add(EPC, antenna=1, reads=3)
    reader.add(EPC2, antenna=3, reads=3)
    for i in range(6):  # more tags than fit one frame: answers continue with status 0x03
        reader.add(f"3074257BF7194E40{i:08X}", antenna=1, reads=3)
    drv = cfg(tmp_path / "rfid0", antennas=[1, 3]).build()
    await drv.connect()
    got = await collect(drv.readings(), lambda out: sum(r.fields["event"] == "window" for r in out) == 8)
    arrive = [r for r in got if r.fields["event"] == "arrive"]
    assert len(arrive) == 8 and {r.fields["antenna"] for r in arrive} == {1, 3}
    assert all(r.fields["read_count"] == 3 for r in got if r.fields["event"] == "window")
    await drv.aclose()


async def test_bad_crc_is_a_bad_reading_and_capture_goes_on(reader, tmp_path):
    reader.add(EPC, reads=5)
    reader.corrupt_next = True
    drv = cfg(tmp_path / "rfid0", report="first_and_summary").build()
    await drv.connect()
    got = await collect(drv.readings(), lambda out: any(r.quality == "good" and r.fields["event"] == "window" for r in out))
    bad = [r for r in got if r.quality == "bad"]
    assert len(bad) == 1 and "CRC" in bad[0].reason and bad[0].raw
    window = [r for r in got if r.quality == "good" and r.fields["event"] == "window"][0]
    assert window.fields["read_count"] == 4  # the corrupted answer's read is not counted
    assert drv.counters["crc_errors"] == 1
    await drv.aclose()


async def test_silent_reader_and_unplug(reader, tmp_path):
    reader.add(EPC)
    drv = cfg(tmp_path / "rfid0", response_timeout=0.05, max_missed=2).build()
    await drv.connect()
    it = drv.readings()
    first = await anext(it)
    assert first.fields["event"] == "arrive"
    reader.mute = True
    summary = await anext(it)  # on link loss the open window is reported …
    assert summary.fields["event"] == "window"
    with pytest.raises(NotConnected, match="no answer"):  # … then the loss
        await anext(it)
    await drv.aclose()
    reader.mute = False
    reader.unplug()
    with pytest.raises(NotConnected):
        await drv.connect()
    reader.plug()
    await drv.connect()
    assert (await anext(drv.readings())).value == EPC
    await drv.aclose()


class Clock:
    """The driver's wall clock, moved on by the test: a hold passes without waiting it out."""

    def __init__(self):
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


async def test_rdm6300_badges(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rfid_driver, "time", clock)
    sim = Rdm6300Reader(tmp_path / "badge")
    sim.plug()
    drv = RfidSerialConfig(kind="rfid_serial", name="b1", protocol="rdm6300", port=tmp_path / "badge", hold=0.5).build()
    await drv.connect()
    it = drv.readings()
    sim.present(0x00A1B2C3, repeats=5)  # held to the reader: one scan
    sim.present(0x00A1B2C3, corrupt=True)
    first = await anext(it)
    assert (first.value, first.type, first.fields["hint"], first.raw) == ("0010597059", "scan", "badge", b"\x020F00A1B2C3DF\x03")
    bad = await anext(it)
    assert bad.quality == "bad" and "checksum" in bad.reason
    clock.offset += 0.6
    sim.present(0x00A1B2C3)  # presented again after the hold: a new scan (log out)
    assert (await anext(it)).value == "0010597059"
    assert drv.counters["reads"] == 6
    await drv.aclose()
    sim.unplug()


async def test_rdm6300_control_bytes_in_a_frame_are_a_bad_scan_and_reading_goes_on(tmp_path):
    sim = Rdm6300Reader(tmp_path / "badge")
    sim.plug()
    drv = RfidSerialConfig(kind="rfid_serial", name="b1", protocol="rdm6300", port=tmp_path / "badge").build()
    await drv.connect()
    try:
        it = drv.readings()
        sim.pty.write(b"\x020F00A1B2C3\x0c\x0c\x03")  # line noise inside the hex body
        bad = await anext(it)
        assert bad.quality == "bad" and bad.reason == "non-hex characters in frame" and bad.raw == b"\x020F00A1B2C3\x0c\x0c\x03"
        sim.present(0x00A1B2C3)
        assert (await anext(it)).value == "0010597059"
        assert drv.counters["framing_errors"] == 1 and drv.counters["reads"] == 1
    finally:
        await drv.aclose()
        sim.unplug()


async def test_cfru_counters_survive_in_the_driver_across_reconnects(reader, tmp_path):
    reader.add(EPC, reads=3)
    reader.corrupt_next = True
    drv = cfg(tmp_path / "rfid0").build()
    await drv.connect()
    await collect(drv.readings(), lambda out: any(r.quality == "bad" for r in out))
    await drv.aclose()
    await drv.connect()
    await collect(drv.readings(), lambda out: any(r.quality == "good" for r in out))
    await drv.aclose()
    assert drv.counters["crc_errors"] == 1 and drv.counters["reads"] >= 1
