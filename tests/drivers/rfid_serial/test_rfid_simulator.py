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
