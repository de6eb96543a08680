"""Dead letters: list, show, requeue and purge, on the file without a daemon and through a running one."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from gateway.capture import deadletter
from gateway.capture.outbox import Outbox
from gateway.config import BufferConfig
from tests.conftest import InProcess, Upstream, write_config
from tests.helpers import balance, cli


async def dead_lettered(box: Outbox, reasons: list[str]) -> list[int]:
    for i, _ in enumerate(reasons):
        box.put(f"t/dev{i}", b'"type":"telemetry","value":%d}' % i, False)
    await box.flush()
    seqs = [r[0] for r in await box.fetch(0, 100)][-len(reasons) :]
    for s, reason in zip(seqs, reasons, strict=True):
        box.dead([s], reason)
    await box.flush()
    return seqs


async def test_list_show_requeue_purge_on_the_outbox(tmp_path):
    async with Outbox(BufferConfig(path=tmp_path / "buffer.db")) as box:
        a, b, c = await dead_lettered(box, ["the broker refused the message: 0x87", "record too big " + "x" * 500, "too big"])
        rsp = await deadletter.handle(box, {"action": "list"})
        assert rsp["total"] == 3 and [d["seq"] for d in rsp["dead_letters"]] == [a, b, c]
        assert len(rsp["dead_letters"][1]["reason"]) == deadletter.CUT  # long values are cut
        shown = await deadletter.handle(box, {"action": "show", "seq": a})
        assert json.loads(shown["record"]) == {"seq": a, "type": "telemetry", "value": 0}
        assert (await deadletter.handle(box, {"action": "list", "reason": "TOO BIG"}))["total"] == 2
        assert (await deadletter.handle(box, {"action": "list", "first": b, "last": b}))["total"] == 1
        assert not (await deadletter.handle(box, {"action": "purge"}))["ok"]  # no filter, no --all

        assert (await deadletter.handle(box, {"action": "requeue", "first": a, "last": a}))["requeued"] == 1
        back = await box.fetch(0, 100)
        assert [(r[1], r[2]) for r in back] == [("t/dev0", b'"type":"telemetry","value":0}')] and back[0][0] > c  # a new seq
        assert box.stats.dead_rows == 2 and box.stats.counters["requeued"] == 1 and balance(box) == 0

        assert (await deadletter.handle(box, {"action": "purge", "older_than": 3600}))["purged"] == 0
        assert (await deadletter.handle(box, {"action": "purge", "all": True}))["purged"] == 2
        assert box.stats.dead_rows == 0 and box.stats.counters["dead_letter_purged"] == 2


def test_cli_without_a_daemon_opens_the_file_under_the_lock(tmp_path):
    path = write_config(tmp_path, 1, [])

    async def prepare():
        async with Outbox(BufferConfig(path=tmp_path / "buffer.db")) as box:
            return await dead_lettered(box, ["refused: 0x87", "too big"])

    a, b = asyncio.run(prepare())
    r = cli("dead-letter", "list", "-c", str(path))
    assert r.returncode == 0, r.stderr
    assert str(a) in r.stdout and "refused: 0x87" in r.stdout and "t/dev1" in r.stdout
    r = cli("dead-letter", "show", str(b), "-c", str(path))
    assert r.returncode == 0 and '"value": 1' in r.stdout and "too big" in r.stdout
    r = cli("dead-letter", "show", "1", "-c", str(path))
    assert r.returncode == 1 and "no dead letter" in r.stderr
    r = cli("dead-letter", "requeue", "--reason", "too big", "-c", str(path))
    assert r.returncode == 0 and r.stdout.strip() == "requeued 1 dead letter"
    r = cli("dead-letter", "purge", "--all", "-c", str(path))
    assert r.returncode == 0 and r.stdout.strip() == "purged 1 dead letter"
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert db.execute("SELECT count(*) FROM dead_letter").fetchone()[0] == 0
        assert db.execute("SELECT topic FROM outbox").fetchall() == [("t/dev1",)]


async def test_requeue_through_a_running_daemon_sends_the_record_again(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [])
    # The dead letter is made before the daemon runs: its publisher would otherwise race us for the row.
    async with Outbox(BufferConfig(path=tmp_path / "buffer.db")) as box:
        (s,) = await dead_lettered(box, ["the broker refused the message: PUBACK 0x87"])
    async with Upstream(broker.port, "t/#") as up, InProcess(path) as gw:
        r = await asyncio.to_thread(cli, "dead-letter", "list", "--json", "-c", str(path))
        assert r.returncode == 0 and [d["seq"] for d in json.loads(r.stdout)["dead_letters"]] == [s]
        r = await asyncio.to_thread(cli, "dead-letter", "requeue", "--first", str(s), "-c", str(path))
        assert r.returncode == 0 and r.stdout.strip() == "requeued 1 dead letter"
        await up.wait(lambda rs: any(x.get("value") == 0 for x in rs))
        st = await gw.wait_status(lambda st: st["buffer"]["rows"] == 0)
        assert st["buffer"]["dead_letter_rows"] == 0 and st["counters"]["requeued"] == 1
