"""The README's picture of the station page, taken with the demo's configuration and parts.

    .venv/bin/python -m tests.page_screenshot [docs/station-page.png] [--language zh-CN]

Runs what scripts/demo runs (mosquitto on 18830, the Modbus PLC simulator on 5020, the gateway with
config/demo.yaml, whose page is on 9580), in a temporary folder: the scanner simulator replays its
shift, a work order is set with `shopfloor-gateway context set` as the demo does, the press runs
hot so that an alarm is up, and headless Chromium photographs the page at 1024×768.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from simulators.broker import Broker, wait_port
from simulators.modbus import ModbusSim
from simulators.scanner import SHIFT, SerialScanner
from tests.conftest import ROOT, Process
from tests.helpers import cli
from tests.page_browser import browser, wait

PAGE = "http://127.0.0.1:9580/station/st10"


def demo_config(folder: Path, language: str) -> Path:
    text = (ROOT / "config/demo.yaml").read_text()
    text = text.replace("run/demo/", f"{folder}/").replace("config/scan/", f"{ROOT}/config/scan/")
    path = folder / "demo.yaml"
    path.write_text(text.replace("language: en ", f"language: {language} "))
    return path


async def shoot(out: Path, language: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="page-shot-"))
    path = demo_config(folder, language)
    broker = Broker(folder / "broker", port=18830)
    broker.start()
    sim = SerialScanner(folder / "scanner0")
    sim.plug()
    gw = Process(path, folder / "gateway.log")
    try:
        async with ModbusSim(port=5020) as plc:
            await plc.set("press_temperature", 184.2)  # above its high limit (183): the alarm is up
            gw.start()
            await asyncio.to_thread(wait_port, 9580, 30)
            d = await asyncio.to_thread(browser)
            try:
                await asyncio.to_thread(d.get, PAGE)
                await wait(d, lambda d: d.execute_script("return document.querySelectorAll('#devices li[data-state=connected]').length") == 2, 30)
                # The shift (the operator stays logged in), then material until the panel is full.
                shift = [text for text, _ in SHIFT[:-1]] + [f"]C1010950110102091721SN-{i:04d}" for i in range(8)]
                for i, text in enumerate(shift):
                    if i == 1:
                        done = await asyncio.to_thread(cli, "context", "set", "-c", str(path), "--work-order", "WO-1001", "--operation", "OP10",
                                                       "--lot", "LOT-A42", "--operator", "op-7")
                        assert done.returncode == 0, done.stderr
                    sim.scan(text)
                    await sim.next_ack(10)
                await wait(d, lambda d: len(d.find_elements("css selector", "#scans tr")) == len(shift), 10)
                await wait(d, lambda d: d.execute_script("return document.querySelectorAll('#alarms li').length") > 0, 30)
                out.parent.mkdir(parents=True, exist_ok=True)
                await asyncio.to_thread(d.save_screenshot, str(out))
            finally:
                d.quit()
    finally:
        if gw.proc is not None:
            gw.terminate()
        sim.unplug()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.page_screenshot", description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, default=ROOT / "docs/station-page.png")
    p.add_argument("--language", choices=("en", "zh-CN"), default="en")
    args = p.parse_args(argv)
    asyncio.run(shoot(args.out, args.language))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
