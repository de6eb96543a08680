"""Reload without a restart: the file is validated first, changed devices restart, untouched ones
keep running without a gap, and the buffer is never touched."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import InProcess, Process, Upstream, write_config
from tests.helpers import Control

ROOT = Path(__file__).resolve().parents[2]
STEADY = {"kind": "synthetic", "name": "steady", "rate": 100, "tags": 1}
OTHER = {"kind": "synthetic", "name": "other", "rate": 50, "tags": 1}


def rewrite(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


async def test_changing_one_device_leaves_the_other_running_without_a_gap(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [STEADY, OTHER])
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
        await up.wait(lambda rs: len(rs) > 100)
        task, health = gw.gw.devices["steady"], gw.gw.health["steady"]
        rewrite(path, lambda d: d["devices"][1].update(tags=3))
        rsp = await gw.request(cmd="reload")
        assert rsp["ok"] and rsp["restarted"] == ["other"] and rsp["unchanged"] == ["steady"], rsp
        await up.wait(lambda rs: any(r.get("device") == "other" and r["tag"] == "tag2" for r in rs))
        n = len(up.records)
        await up.wait(lambda rs: len(rs) > n + 100)
        assert gw.gw.devices["steady"] is task and gw.gw.health["steady"] is health  # never restarted
        assert health.outages == 0 and health.state == "connected"
    stats = gw.gw.log.stats  # after the stop: everything delivered, or still in the buffer
    async with Upstream(broker.port, "shopfloor/#", client_id=up.client_id) as late:
        await late.wait(lambda rs: len(up.records) + len(rs) >= stats.counters["captured"] - stats.rows, timeout=5)
    seqs = [r["seq"] for r in up.records + late.records]
    assert len(seqs) == len(set(seqs)) == stats.counters["captured"] - stats.rows  # nothing lost, nothing sent twice
    ts = [r["ts"] for r in up.of(device="steady")]
    assert ts == sorted(ts)


async def test_an_invalid_file_is_refused_with_its_line_and_the_running_configuration_stays(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [STEADY, OTHER])
    async with InProcess(path) as gw:
        before = gw.gw.cfg
        text = path.read_text()
        path.write_text(text.replace("rate: 50", "rate: fast"))
        rsp = await gw.request(cmd="reload")
        assert not rsp["ok"] and any(f"{path}:" in p and "rate" in p for p in rsp["problems"]), rsp
        cli = subprocess.run([sys.executable, "-m", "gateway", "reload", "-c", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert cli.returncode == 78 and "rate" in cli.stderr and "Traceback" not in cli.stderr
        path.write_text(text.replace(str(tmp_path / "buffer.db"), str(tmp_path / "other.db")).replace("gw-test", "gw-other"))
        rsp = await gw.request(cmd="reload")
        assert not rsp["ok"] and any(p.startswith("buffer.path: ") for p in rsp["problems"]), rsp
        assert any(p.startswith("gateway.id: ") for p in rsp["problems"])
        assert gw.gw.cfg is before
        st = await gw.status()
        assert {d["device"]: d["state"] for d in st["devices"]} == {"steady": "connected", "other": "connected"}


async def test_sighup_and_the_cli_reload_add_and_remove_devices(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [STEADY])
    gw = Process(path, tmp_path / "gw.log")
    gw.start()
    ctl = Control(path)
    try:
        await ctl.device("steady")
        rewrite(path, lambda d: d["devices"].append(OTHER))
        gw.proc.send_signal(signal.SIGHUP)
        async with asyncio.timeout(20):
            while "other" not in {d["device"] for d in (await ctl.status())["devices"]}:
                await asyncio.sleep(0.05)
        rewrite(path, lambda d: d["devices"].pop(0))
        cli = subprocess.run([sys.executable, "-m", "gateway", "reload", "-c", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert "stopped    steady" in cli.stdout
        assert [d["device"] for d in (await ctl.status())["devices"]] == ["other"]
    finally:
        assert gw.terminate() == 0
    assert [e["event"] for e in gw.events()].count("reloaded") == 2
