"""What the journal keeps after delivery, and what it lets go, on real files through the real log."""

from __future__ import annotations

import sqlite3
import time

from gateway.capture.log import Log
from gateway.config import JournalConfig
from tests.gateway.capture.logkit import take, tel, whole
from tests.helpers import buffer_cfg as cfg


def rows(tmp_path, where="1") -> list[tuple]:
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        return db.execute(f"SELECT type, last - seq + 1 FROM log WHERE {where} ORDER BY seq").fetchall()


async def prune_all(box: Log) -> None:
    while await box.prune():
        pass


async def deliver(box: Log, sink: str = "mqtt") -> None:
    recs = await take(box, sink)
    if recs:
        box.feed(sink).ack(recs[0][0], recs[-1][0])
    await box.flush()


async def test_delivered_telemetry_is_kept_within_its_budget_oldest_first(tmp_path):
    async with Log(cfg(tmp_path), ["mqtt"], JournalConfig(telemetry_bytes=20_000)) as box:
        for i in range(40):
            for j in range(10):
                tel(box, i * 10 + j, device="press", size=100)
            await box.flush()  # one row of 10 readings per commit
        await deliver(box)
        assert box.stats.rows == 0  # everything delivered, all still in the journal
        await prune_all(box)
        left = rows(tmp_path)
        assert 0 < len(left) < 40 and box.stats.telemetry_bytes <= 20_000
        assert box.stats.counters["journal_pruned"] == (40 - len(left)) * 10
        newest = [r["value"] for _, r in await take(box)]  # nothing is handed out again
        assert newest == []
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        first = db.execute("SELECT min(seq) FROM log").fetchone()[0]
        assert db.execute("SELECT count(*) FROM log WHERE seq < ?", (first,)).fetchone()[0] == 0


async def test_nothing_a_sink_has_not_acknowledged_is_pruned(tmp_path):
    async with Log(cfg(tmp_path), ["uns", "spb"], JournalConfig(telemetry_bytes=0, keep_days=0)) as box:
        for i in range(20):
            tel(box, i, device=f"d{i}")
        whole(box, "scan", value="x")
        await box.flush()
        await deliver(box, "uns")  # spb has nothing acknowledged
        await prune_all(box)
        assert len(rows(tmp_path)) == 21
        await deliver(box, "spb")
        await prune_all(box)
        assert rows(tmp_path) == []  # keep_days 0: the scan goes too once both have it


async def test_scans_alarms_and_context_events_outlive_telemetry(tmp_path):
    async with Log(cfg(tmp_path), ["mqtt"], JournalConfig(telemetry_bytes=0, keep_days=365)) as box:
        whole(box, "context", device="", event="started", context_id="c1", work_order="WO-1", lot="L-1", started_at=time.time())
        for i in range(10):
            tel(box, i, device=f"d{i}", context="c1")
        whole(box, "scan", context_id="c1", lot="L-1", gtin="09501101020917", batch_lot="B-7", status="accepted")
        whole(box, "alarm", device="press", tag="temp", context_id="c1", state="raised")
        await box.flush()
        await deliver(box)
        await prune_all(box)
        assert [t for t, _ in rows(tmp_path)] == ["context", "scan", "alarm"]
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        keys = set(db.execute("SELECT key, value FROM keys"))
        ctx = db.execute("SELECT context_id, work_order, lot FROM contexts").fetchall()
    assert {("lot", "L-1"), ("gtin", "09501101020917"), ("batch", "B-7"), ("work_order", "WO-1"), ("alarm", "temp")} <= keys
    assert ctx == [("c1", "WO-1", "L-1")]


async def test_protected_records_go_after_keep_days_with_their_keys(tmp_path):
    old = time.time() - 3 * 86400
    async with Log(cfg(tmp_path), ["mqtt"], JournalConfig(keep_days=2)) as box:
        whole(box, "scan", lot="L-old", at=old)
        whole(box, "scan", lot="L-new")
        await box.flush()
        await deliver(box)
        await prune_all(box)
        assert len(rows(tmp_path)) == 1
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert [v for (v,) in db.execute("SELECT value FROM keys WHERE key = 'lot'")] == ["L-new"]


async def test_a_pruning_step_is_small(tmp_path):
    from gateway.journal import retention

    async with Log(cfg(tmp_path), ["mqtt"], JournalConfig(telemetry_bytes=0)) as box:
        for i in range(3 * retention.STEP):
            tel(box, i, device=f"d{i}")
        await box.flush()
        await deliver(box)
        assert await box.prune() is True  # one step, more to do
        assert len(rows(tmp_path)) == 2 * retention.STEP
        await prune_all(box)
        assert rows(tmp_path) == []


async def test_a_step_with_nothing_old_reads_next_to_nothing_of_a_big_journal(tmp_path):
    """Counted in SQLite virtual-machine steps (not in time): a year of scans all younger than
    keep_days must not be read through at every pruning step."""
    from gateway.journal import retention

    async with Log(cfg(tmp_path), ["mqtt"], JournalConfig()) as box:
        for i in range(20_000):
            whole(box, "scan", lot=f"L-{i % 50}", value=str(i))
        await box.flush()
        await deliver(box)
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        floor = db.execute("SELECT max(last) FROM log").fetchone()[0]
        steps = []
        db.set_progress_handler(lambda: steps.append(1), 100)
        p = retention.step(db, floor, 0, time.time() - 365 * 86400)
        db.rollback()
    assert p.rows == [] and p.other == 0
    assert len(steps) * 100 < 20_000  # fewer steps than one per kept record
