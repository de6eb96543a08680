"""The wedge driver against stand-in device files (real fds carrying real input_event records)."""

import asyncio

import pytest

from drivers.scanner_evdev.config import ScannerEvdevConfig
from drivers.scanner_evdev.driver import ScannerEvdev
from gateway.errors import DriverFatal, NotConnected
from simulators.wedge import Devices, Typist

PATH = "/dev/input/by-id/usb-Honeywell_1900-event-kbd"


def driver(devices, **kw):
    cfg = ScannerEvdevConfig(kind="scanner_evdev", name="w1", path=PATH, **kw)
    return ScannerEvdev(cfg, opener=devices)


async def test_grab_scan_and_ctrl_gs():
    devices = Devices()
    dev = devices.plug(PATH)
    drv = driver(devices, layout="de")
    await drv.connect()
    assert dev.grabbed
    dev.send(Typist("de").scan("]C10109501101020917\x1d10Äz"))
    r = await anext(drv.readings())
    assert (r.value, r.type, r.quality, r.raw) == ("]C10109501101020917\x1d10Äz", "scan", "good", "]C10109501101020917\x1d10Äz".encode("cp1252"))
    await drv.aclose()
    assert not dev.grabbed and dev.closed


async def test_capslock_from_led():
    devices = Devices()
    dev = devices.plug(PATH, capslock_led=True)
    drv = driver(devices)
    await drv.connect()
    dev.send(Typist("us").scan("Ab"))
    assert (await anext(drv.readings())).value == "aB"
    await drv.aclose()


async def test_partial_dropped_after_silence():
    devices = Devices()
    dev = devices.plug(PATH)
    drv = driver(devices, key_timeout=0.05)
    await drv.connect()
    it = drv.readings()
    t = Typist("us")
    dev.send(t.char("W") + t.char("O"))
    stale = await anext(it)
    assert (stale.quality, stale.value) == ("bad", "WO") and "partial" in stale.reason
    dev.send(t.scan("WO-1"))
    assert (await anext(it)).value == "WO-1"
    assert drv.stats["stale"] == 1 and drv.stats["scans"] == 1
    await drv.aclose()


async def test_unplug_enodev_and_replug_at_the_stable_path():
    devices = Devices()
    dev = devices.plug(PATH)
    drv = driver(devices)
    await drv.connect()
    it = drv.readings()
    t = Typist("us")
    dev.send(t.scan("ONE"))
    assert (await anext(it)).value == "ONE"
    # Half a scan with Shift still held, then the cable is pulled.
    dev.send(t._ev(42, 1) + t.tap(30))  # KEY_LEFTSHIFT down, KEY_A
    devices.unplug(PATH)
    lost = await anext(it)
    assert (lost.quality, lost.value) == ("bad", "A") and "device lost" in lost.reason
    with pytest.raises(NotConnected):
        await anext(it)
    await drv.aclose()  # ungrab on a vanished device must not raise
    with pytest.raises(NotConnected, match="not present"):
        await drv.connect()
    new = devices.plug(PATH)  # back, as a new eventN behind the same by-id link
    await drv.connect()
    assert new.grabbed
    new.send(t.scan("two"))  # the Shift held on the old device must not stick
    assert (await anext(drv.readings())).value == "two"
    assert drv.stats["stale"] == 1
    await drv.aclose()


async def test_grab_held_by_another_program_is_fatal():
    devices = Devices()
    devices.plug(PATH, busy=True)
    with pytest.raises(DriverFatal, match="grab"):
        await driver(devices).connect()


async def test_cancelling_the_reader_loses_no_event(monkeypatch):
    devices = Devices()
    dev = devices.plug(PATH)
    drv = driver(devices)
    await drv.connect()
    it = drv.readings()
    t = Typist("us")
    loop, waiting = asyncio.get_running_loop(), asyncio.Event()
    add_reader = loop.add_reader
    monkeypatch.setattr(loop, "add_reader", lambda *a: (add_reader(*a), waiting.set()))
    task = asyncio.ensure_future(anext(it))
    async with asyncio.timeout(5):
        await waiting.wait()  # the driver waits for the device to become readable
    task.cancel()  # a cancelled wait for readability: nothing was read, nothing lost
    with pytest.raises(asyncio.CancelledError):
        await task
    it = drv.readings()
    dev.send(t.scan("Shift!"))
    assert (await anext(it)).value == "Shift!"
    await drv.aclose()


def test_unknown_layout_is_a_config_error():
    with pytest.raises(ValueError, match="unknown layout"):
        ScannerEvdevConfig(kind="scanner_evdev", name="w", path=PATH, layout="xx")


async def test_counters_are_one_plain_dict_across_reconnects():
    # The supervisor reads `counters` (a plain dict) for status; this driver's own totals must not
    # reset when the device comes back.
    from evdev import ecodes as e

    devices = Devices()
    dev = devices.plug(PATH)
    drv = driver(devices)
    counters = drv.counters
    assert type(counters) is dict
    await drv.connect()
    it = drv.readings()
    t = Typist("us")
    dev.send(t.char("A") + t.tap(e.KEY_F5) + t.tap(e.KEY_ENTER) + t.char("B"))
    assert (await anext(it)).quality == "bad"  # the key without a character
    devices.unplug(PATH)
    assert "device lost" in (await anext(it)).reason
    with pytest.raises(NotConnected):
        await anext(it)
    await drv.aclose()
    new = devices.plug(PATH)
    await drv.connect()
    new.send(t.scan("C") + t.tap(e.KEY_ENTER))
    it = drv.readings()
    assert (await anext(it)).value == "C"
    assert (await anext(it)).reason.startswith("empty scan")
    assert drv.counters is counters
    assert counters == {"scans": 3, "stale": 1, "unmapped": 1, "empty": 1, "uncomposed": 0}
    await drv.aclose()
