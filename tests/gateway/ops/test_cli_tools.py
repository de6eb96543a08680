"""The CLI as maintenance meets it: --version, check-config -c, YAML errors with their column,
`config sample KIND` for every driver, and `run --once` against the PLC simulator with no broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from gateway import config
from gateway.ops import samples
from gateway.ops.version import VERSION
from simulators.modbus import ModbusSim
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_version():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"shopfloor-gateway {VERSION}" and VERSION != "0+unknown"


def test_check_config_takes_c_and_the_environment_like_every_subcommand(tmp_path):
    path = write_config(tmp_path, 1883, [])
    assert cli("check-config", "-c", str(path)).returncode == 0
    r = cli("check-config", env={"SHOPFLOOR_GATEWAY_CONFIG": str(path)})
    assert r.returncode == 0 and str(path) in r.stdout


def test_a_yaml_syntax_error_names_line_column_and_where_the_construct_began(tmp_path):
    f = tmp_path / "gw.yaml"
    f.write_text("gateway:\n  id: gw1\n  stations: [st10, st20\nmqtt: {host: h}\n")
    r = cli("check-config", str(f))
    assert r.returncode == 78
    assert r.stderr.startswith(f"{f}:4:5: YAML syntax error: ") and "at line 3, column 13" in r.stderr, r.stderr


@pytest.mark.parametrize("kind", list(samples.kinds()))
def test_config_sample_of_every_kind_is_a_valid_commented_entry(tmp_path, kind):
    r = cli("config", "sample", kind)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"# {kind}: ") and "\n- kind: " in r.stdout
    entry = yaml.safe_load(r.stdout)
    assert isinstance(entry, list) and entry[0]["kind"] == kind
    doc = {"gateway": {"id": "gw1", "site": "s", "area": "a", "line": "l", "stations": ["st10"]},
           "mqtt": {"host": "127.0.0.1"}, "devices": entry}
    doc["devices"][0].pop("station", None)
    config.parse(yaml.safe_dump(doc), "sample.yaml")


def test_config_sample_of_an_unknown_kind_lists_the_kinds():
    r = cli("config", "sample", "profibus")
    assert r.returncode == 1 and "modbus" in r.stderr and "Traceback" not in r.stderr


async def test_run_once_reads_each_poll_group_once_without_a_broker(tmp_path):
    async with ModbusSim(port=0) as sim:
        plc = {"kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": sim.port, "polls": [
            {"interval": 0.1, "tags": [{"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC"}]},
            {"interval": 1.0, "tags": [{"name": "spindle_speed", "address": 6, "type": "uint16", "unit": "rpm"}]},
        ]}
        off = {"kind": "modbus", "name": "nobody", "host": "127.0.0.1", "port": 1, "connect_timeout": 1,
               "polls": [{"interval": 1, "tags": [{"name": "t", "address": 0}]}]}
        path = write_config(tmp_path, 1, [plc, off])  # port 1: no broker there
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", "run", "--once", "-c", str(path), cwd=ROOT,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    records = [orjson.loads(line) for line in out.splitlines()]
    assert sorted(r["tag"] for r in records) == ["press_temperature", "spindle_speed"]  # each once
    assert all(r["topic"].endswith("/press1/telemetry") and r["context"] == "unassigned" for r in records)
    assert proc.returncode == 1 and b"nobody" in err and b"cannot open" in err  # the dead PLC is named
    assert not (tmp_path / "buffer.db").exists()  # nothing stored


async def test_status_shows_version_uptime_rates_retries_alarms_and_disk(tmp_path, broker):
    from tests.conftest import InProcess

    async with ModbusSim(port=0) as sim:
        plc = {"kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": sim.port, "polls": [{"interval": 0.1, "tags": [
            {"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC", "limits": {"high": 20}}]}]}
        off = {"kind": "modbus", "name": "nobody", "host": "127.0.0.1", "port": 1, "connect_timeout": 1, "backoff_initial": 30,
               "backoff_max": 60, "polls": [{"interval": 1, "tags": [{"name": "t", "address": 0}]}]}
        path = write_config(tmp_path, broker.port, [plc, off])
        async with InProcess(path) as gw:
            await gw.wait_status(lambda st: st["alarms"] and {d["device"]: d for d in st["devices"]}["press1"]["rate"]
                                 and {d["device"]: d for d in st["devices"]}["nobody"]["retry_in"])
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", "status", "-c", str(path), cwd=ROOT,
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, err
    assert f"version {VERSION}, up " in text and "free on its disk" in text
    assert "/s" in text.split("press1")[1].splitlines()[0]
    assert "retry in " in [line for line in text.splitlines() if "nobody" in line][0]
    assert "alarm   press1/press_temperature high" in text


def test_long_values_are_cut():
    from gateway.ops.cli import cut

    assert cut("x" * 500) == "x" * 79 + "…" and cut("short") == "short"
