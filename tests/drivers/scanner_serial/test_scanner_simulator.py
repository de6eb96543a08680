"""`python -m simulators scanner` as a real process, read by the driver with host-ACK answers."""

import asyncio
import sys
from pathlib import Path

from drivers.scanner_serial.config import ScannerSerialConfig
from simulators.scanner import SHIFT

ROOT = Path(__file__).resolve().parents[3]


async def test_simulator_process_replays_the_shift(tmp_path):
    link = tmp_path / "scanner0"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "scanner", "--link", str(link), "--interval", "0", "--hostack", "--start-delay", "0.3",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    try:
        assert b"scanner on /dev/pts/" in await asyncio.wait_for(proc.stdout.readline(), 10)
        drv = ScannerSerialConfig(kind="scanner_serial", name="s", port=link, feedback="honeywell").build()
        await drv.connect()
        it = drv.readings()
        texts = []
        for _, expected in SHIFT:
            r = await asyncio.wait_for(anext(it), 10)
            texts.append(r.value)
            await r.ack({"status": expected})
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 10)).decode() for _ in SHIFT]
        await drv.aclose()
        assert texts == [t for t, _ in SHIFT]
        assert all(line.rstrip().endswith("good" if exp in ("accepted", "warning") else "bad") for line, (_, exp) in zip(lines, SHIFT))
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
