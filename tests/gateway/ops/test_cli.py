"""The command line against a running gateway process, and without one."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from tests.conftest import ROOT, Process, Upstream, write_config
from tests.helpers import cli


async def test_status_and_context_against_a_running_gateway(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [{"kind": "synthetic", "name": "press", "rate": 100, "tags": 2}])
    gw = Process(path, tmp_path / "gateway.log")
    async with Upstream(broker.port, "shopfloor/#") as up:
        gw.start()
        try:
            await up.wait(lambda rs: len(rs) >= 5)
            r = await asyncio.to_thread(cli, "context", "set", "-c", str(path), "--work-order", "WO-5", "--lot", "L-5", "--operator", "op1")
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["work_order"] == "WO-5"
            await up.wait(lambda rs: any(x.get("work_order") == "WO-5" and x["type"] == "telemetry" for x in rs))
            r = await asyncio.to_thread(cli, "status", "-c", str(path), "--json")
            st = json.loads(r.stdout)
            assert r.returncode == 0 and st["running"]
            (dev,) = st["devices"]
            assert dev["device"] == "press" and dev["state"] == "connected" and dev["last_reading"]
            assert st["broker"]["state"] == "connected" and st["counters"]["read"] > 0
            assert {"rows", "oldest_unsent_age"} <= st["buffer"].keys()
            assert {"read", "buffered", "published", "dead_lettered", "discarded"} <= st["counters"].keys()
            r = await asyncio.to_thread(cli, "status", "-c", str(path))
            assert "work order WO-5" in r.stdout and "press" in r.stdout
            r = await asyncio.to_thread(cli, "context", "clear", "-c", str(path))
            assert r.returncode == 0 and json.loads(r.stdout)["state"] == "idle"
        finally:
            assert gw.terminate() == 0


def test_context_and_status_without_a_running_gateway(tmp_path):
    path = write_config(tmp_path, 1, [])
    r = cli("context", "set", "-c", str(path), "--work-order", "WO-9")
    assert r.returncode == 0, r.stderr
    r = cli("status", "-c", str(path), "--json")
    st = json.loads(r.stdout)
    assert r.returncode == 69 and not st["running"]
    assert st["contexts"]["st10"]["work_order"] == "WO-9"
    assert st["buffer"]["rows"] == 1  # the journaled change waits for the gateway to send it
    r = cli("context", "show", "-c", str(path))
    assert r.returncode == 0 and "WO-9" in r.stdout


def test_context_arguments_are_checked_before_anything_is_touched(tmp_path):
    path = write_config(tmp_path, 1, [])
    # The argument list is made in the process: 300 KB is more than one exec argument may hold (128 KiB).
    code = f"import sys; from gateway.ops.cli import main; sys.exit(main(['context', 'set', '-c', {str(path)!r}, '--work-order', 'W' * 300_000]))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr == "refused: --work-order: is 300000 characters long; at most 64 are allowed\n"
    assert not (tmp_path / "buffer.db").exists()
    for args, expected in (
        (["--work-order", "W" * 100_000], "refused: --work-order: is 100000 characters long; at most 64 are allowed"),
        (["--work-order", "WO 1"], "refused: --work-order: contains ' '"),
        (["--work-order", "WO-1", *[f"--operator=op{i}" for i in range(17)]], "refused: --operator: List should have at most 16 items"),
    ):
        r = cli("context", "set", "-c", str(path), *args)
        assert r.returncode == 1 and r.stderr.startswith(expected) and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "buffer.db").exists()


async def test_without_a_daemon_the_local_user_is_the_actor(tmp_path, broker):
    import os
    import pwd

    from tests.conftest import InProcess

    path = write_config(tmp_path, broker.port, [])
    r = await asyncio.to_thread(cli, "context", "set", "-c", str(path), "--work-order", "WO-9")
    assert r.returncode == 0, r.stderr
    async with Upstream(broker.port, "shopfloor/+/+/+/st10/context") as up, InProcess(path):
        await up.wait(lambda rs: len(rs) == 1)
    assert up.records[0]["actor"] == f"cli:uid={os.getuid()}({pwd.getpwuid(os.getuid()).pw_name})"
