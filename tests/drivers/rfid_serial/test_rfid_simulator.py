"""`python -m simulators rfid` as a real process: tags come and go, the driver sees them arrive and leave."""

import asyncio
import sys
from pathlib import Path

from drivers.rfid_serial.config import RfidSerialConfig

ROOT = Path(__file__).resolve().parents[3]


async def test_simulator_process_tags_come_and_go(tmp_path):
    link = tmp_path / "rfid0"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "rfid", "--link", str(link), "--tags", "4", "--churn", "0.1",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    try:
        assert b"CF-RU reader on /dev/pts/" in await asyncio.wait_for(proc.stdout.readline(), 10)
        drv = RfidSerialConfig(kind="rfid_serial", name="g", protocol="cfru", port=link, poll_interval=0.01, hold=0.05).build()
        await drv.connect()
        events = set()
        async with asyncio.timeout(10):
            async for r in drv.readings():
                assert r.quality == "good" and r.value.startswith("3074257BF7194E40")
                events.add(r.fields["event"])
                if events == {"arrive", "window"}:
                    break
        await drv.aclose()
    finally:
        proc.kill()
        await proc.wait()


# --- the simulator's own CRC, checked against the published values, not against the driver ------------

import pytest  # noqa: E402

from drivers.rfid_serial import cfru  # noqa: E402
from simulators import rfid as sim  # noqa: E402

VECTORS = ["0700010101001e4b", "1500010301010c0000000000000000000003136bb1a5"]  # capture facts, CF-RU


@pytest.mark.parametrize("crc16", [sim.crc16, cfru.crc16], ids=["simulator", "driver"])
def test_crc_mcrf4xx_check_value_and_capture_vectors(crc16):
    assert crc16(b"123456789") == 0x6F91
    for frame in map(bytes.fromhex, VECTORS):
        assert crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def test_simulator_seals_the_capture_vectors():
    for frame in map(bytes.fromhex, VECTORS):
        assert sim.seal(frame[1:-2]) == frame


def test_simulator_does_not_import_the_driver():
    import ast

    tree = ast.parse(Path(sim.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m and m.startswith("drivers")]
