"""Dead letters: list, show, requeue and purge, on the file without a daemon and through a running
one. Dead letters are per sink: a requeued one goes to the sink that refused it alone, and the
journal keeps the original record under its old seq."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import orjson

from gateway.capture import deadletter
from gateway.capture.log import Log
from gateway.config import BufferConfig
from tests.conftest import InProcess, Upstream, write_config
from tests.gateway.capture.feedkit import drain, telemetry
from tests.helpers import balance, cli


async def dead_lettered(box: Log, reasons: list[str], sink: str = "mqtt") -> list[int]:
    """One record per device, each refused for good by `sink` with its reason; the other sinks
    acknowledge everything."""
    for i, _ in enumerate(reasons):
        telemetry(box, 1, b'{"tag":"t","value":%d}' % i, device=f"dev{i}")
    await box.flush()
    for name in box.sink_names:
        got = await drain(box.feed(name))
        if name != sink:
            box.feed(name).ack(got[0], got[-1])
            continue
        seqs = got[-len(reasons) :]
        for s, reason in zip(seqs, reasons, strict=True):
            box.feed(name).dead(s, s, reason)
    await box.flush()
    return seqs


async def test_list_show_requeue_purge_on_the_log(tmp_path):
    async with Log(BufferConfig(path=tmp_path / "buffer.db"), ["mqtt", "archive"]) as box:
        a, b, c = await dead_lettered(box, ["the broker refused the message: 0x87", "record too big " + "x" * 500, "too big"])
        rsp = await deadletter.handle(box, {"action": "list"})
        assert rsp["total"] == 3 and [d["seq"] for d in rsp["dead_letters"]] == [a, b, c]
        assert {d["sink"] for d in rsp["dead_letters"]} == {"mqtt"}
        assert len(rsp["dead_letters"][1]["reason"]) == deadletter.CUT  # long values are cut
        shown = await deadletter.handle(box, {"action": "show", "seq": a})
        original = {"seq": a, "type": "telemetry", "station": "st10", "device": "dev0", "context_id": None, "tag": "t", "value": 0}
        assert json.loads(shown["record"]) == original  # stored whole
        assert (await deadletter.handle(box, {"action": "list", "reason": "TOO BIG"}))["total"] == 2
        assert (await deadletter.handle(box, {"action": "list", "first": b, "last": b}))["total"] == 1
        assert not (await deadletter.handle(box, {"action": "purge"}))["ok"]  # no filter, no --all

        assert (await deadletter.handle(box, {"action": "requeue", "first": a, "last": a}))["requeued"] == 1
        back = await drain(box.feed("mqtt"))
        assert len(back) == 1 and back[0] > c  # a new seq
        (chunk,) = await box.read_after("mqtt", back[0] - 1, 10)
        assert dict(chunk.records()) == {back[0]: {k: v for k, v in original.items() if k != "seq"}}
        assert await box.read_after("archive", c, 10) == [] and box.feed("archive").backlog == 0  # not for the other sink
        box.feed("mqtt").ack(back[0], back[0])
        await box.flush()
        assert box.stats.dead_rows == 2 and box.stats.counters["requeued"] == 1
        assert balance(box, "mqtt") == 0 and balance(box, "archive") == 0

        # The journal keeps the original record under its old seq.
        (old,) = await box.read(lambda conn: conn.execute("SELECT head, items FROM log WHERE seq = ?", (a,)).fetchall())
        assert {"seq": a, **orjson.loads(old[0]), **orjson.loads(old[1])} == original

        assert (await deadletter.handle(box, {"action": "purge", "older_than": 3600}))["purged"] == 0
        assert (await deadletter.handle(box, {"action": "purge", "all": True}))["purged"] == 2
        assert box.stats.dead_rows == 0 and box.stats.counters["dead_letter_purged"] == 2


def test_cli_without_a_daemon_opens_the_file_under_the_lock(tmp_path):
    path = write_config(tmp_path, 1, [])

    async def prepare():
        async with Log(BufferConfig(path=tmp_path / "buffer.db"), ["mqtt"]) as box:
            return await dead_lettered(box, ["refused: 0x87", "too big"])

    a, b = asyncio.run(prepare())
    r = cli("dead-letter", "list", "-c", str(path))
    assert r.returncode == 0, r.stderr
    assert str(a) in r.stdout and "refused: 0x87" in r.stdout and "mqtt" in r.stdout
    r = cli("dead-letter", "show", str(b), "-c", str(path))
    assert r.returncode == 0 and '"value": 1' in r.stdout and '"device": "dev1"' in r.stdout and "too big" in r.stdout
    r = cli("dead-letter", "show", "1", "-c", str(path))
    assert r.returncode == 1 and "no dead letter" in r.stderr
    r = cli("dead-letter", "requeue", "--reason", "too big", "-c", str(path))
    assert r.returncode == 0 and r.stdout.strip() == "requeued 1 dead letter"
    r = cli("dead-letter", "purge", "--all", "-c", str(path))
    assert r.returncode == 0 and r.stdout.strip() == "purged 1 dead letter"
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert db.execute("SELECT count(*) FROM dead_letter").fetchone()[0] == 0
        assert db.execute("SELECT device, only FROM log WHERE only IS NOT NULL").fetchall() == [("dev1", "mqtt")]


async def test_requeue_through_a_running_daemon_sends_the_record_again(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [])
    # The dead letter is made before the daemon runs: its sink would otherwise race us for the record.
    async with Log(BufferConfig(path=tmp_path / "buffer.db"), ["mqtt"]) as box:
        (s,) = await dead_lettered(box, ["the broker refused the message: PUBACK 0x87"])
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
        r = await asyncio.to_thread(cli, "dead-letter", "list", "--json", "-c", str(path))
        assert r.returncode == 0 and [d["seq"] for d in json.loads(r.stdout)["dead_letters"]] == [s]
        r = await asyncio.to_thread(cli, "dead-letter", "requeue", "--first", str(s), "-c", str(path))
        assert r.returncode == 0 and r.stdout.strip() == "requeued 1 dead letter"
        await up.wait(lambda rs: any(x.get("value") == 0 and x.get("device") == "dev0" for x in rs))
        st = await gw.wait_status(lambda st: st["buffer"]["rows"] == 0)
        assert st["buffer"]["dead_letter_rows"] == 0 and st["counters"]["requeued"] == 1
        assert balance(gw.gw.log) == 0
