"""The outbox invariants, against a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from gateway.capture.outbox import Outbox
from gateway.errors import BufferError
from tests.conftest import eventually
from tests.helpers import buffer_cfg as cfg


async def seqs(box: Outbox) -> list[int]:
    return [r[0] for r in await box.fetch(0, 1_000_000)]


async def test_rows_are_captured_only_at_commit_and_survive_reopen(tmp_path):
    async with Outbox(cfg(tmp_path)) as box:
        ticket = box.put("t/a", b'"v":1}', False)
        assert await seqs(box) == []  # queued, not yet captured
        writer = asyncio.create_task(box.run())
        await box.committed(ticket)
        writer.cancel()
        first = await seqs(box)
        assert len(first) == 1
    async with Outbox(cfg(tmp_path)) as box:
        assert await seqs(box) == first
        assert box.stats.rows == 1
        assert box.stats.counters["captured"] == 1


async def test_group_commit_batches_rows(tmp_path):
    async with Outbox(cfg(tmp_path, commit_interval=0.05)) as box:
        writer = asyncio.create_task(box.run())
        tickets = [box.put("t/a", b'"v":%d}' % i, False) for i in range(500)]
        assert len(set(tickets)) == 1  # one batch, one fsync
        await box.committed(tickets[-1])
        assert len(await seqs(box)) == 500
        writer.cancel()


async def test_seq_is_contiguous_and_never_reused_after_emptying(tmp_path):
    async with Outbox(cfg(tmp_path)) as box:
        for i in range(5):
            box.put("t/a", b'"v":1}', False)
        await box.flush()
        s1 = await seqs(box)
        assert s1 == list(range(s1[0], s1[0] + 5))
        box.ack(s1)
        await box.flush()
        assert await seqs(box) == [] and box.stats.rows == 0
    async with Outbox(cfg(tmp_path)) as box:
        box.put("t/a", b'"v":2}', False)
        await box.flush()
        assert (await seqs(box))[0] == s1[-1] + 1


async def test_new_buffer_starts_seq_from_the_clock(tmp_path):
    """Even a deleted buffer file does not make a consumer see an old seq again."""
    async with Outbox(cfg(tmp_path)) as box:
        box.put("t/a", b'"v":1}', False)
        await box.flush()
        (old,) = await seqs(box)
    closed = time.time()
    for f in tmp_path.glob("buffer.db*"):
        f.unlink()
    await eventually(lambda: time.time() >= closed + 0.002, what="the clock to pass a millisecond")  # seq counts from it
    async with Outbox(cfg(tmp_path)) as box:
        box.put("t/a", b'"v":1}', False)
        await box.flush()
        (new,) = await seqs(box)
    assert new > old


async def test_acked_rows_are_deleted_and_not_fetched_again(tmp_path):
    async with Outbox(cfg(tmp_path)) as box:
        for _ in range(3):
            box.put("t/a", b'"v":1}', False)
        await box.flush()
        a, b, c = await seqs(box)
        box.ack([b])
        assert await seqs(box) == [a, c]  # acknowledged but not yet deleted: not re-sent
        await box.flush()
        assert await seqs(box) == [a, c]
        assert box.stats.counters["published"] == 1


async def test_dead_letter_keeps_row_and_reason(tmp_path):
    async with Outbox(cfg(tmp_path)) as box:
        box.put("t/a", b'"v":1}', False)
        await box.flush()
        (s,) = await seqs(box)
        box.dead([s], "too big")
        await box.flush()
        assert await seqs(box) == []
        assert box.stats.counters["dead_lettered"] == 1
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert db.execute("SELECT seq, payload, reason FROM dead_letter").fetchall() == [(s, b'"v":1}', "too big")]


async def test_drop_oldest_never_discards_protected_rows(tmp_path):
    async with Outbox(cfg(tmp_path, max_rows=100, overflow="drop_oldest")) as box:
        for i in range(100):
            box.put("t/scan" if i % 10 == 0 else "t/tele", b'"i":%d}' % i, i % 10 == 0)
        await box.flush()
        for i in range(100, 150):
            box.put("t/tele", b'"i":%d}' % i, False)
        await box.flush()
        rows = await box.fetch(0, 1000)
        assert len(rows) == 100
        assert box.stats.counters["discarded"] == 50
        assert sum(1 for r in rows if r[1] == "t/scan") == 10  # every protected row is still there
        kept = [int(r[2][4:-1]) for r in rows if r[1] == "t/tele"]
        assert kept == sorted(kept) and kept[-1] == 149 and min(kept) > 50  # the oldest went
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert db.execute("SELECT sum(count) FROM discards").fetchone()[0] == 50


async def test_drop_newest_keeps_old_rows_and_protected_new_ones(tmp_path):
    async with Outbox(cfg(tmp_path, max_rows=100, overflow="drop_newest")) as box:
        for i in range(100):
            box.put("t/tele", b'"i":%d}' % i, False)
        await box.flush()
        box.put("t/tele", b'"i":100}', False)
        box.put("t/scan", b'"i":101}', True)
        await box.flush()
        rows = await box.fetch(0, 1000)
        assert [r[2] for r in rows[:3]] == [b'"i":0}', b'"i":1}', b'"i":2}']
        assert rows[-1][1] == "t/scan"
        assert box.stats.counters["discarded"] == 1


async def test_disk_full_keeps_rows_in_memory_and_recovers(tmp_path):
    """SQLite's own "database or disk is full" (max_page_count) stands in for a full disk."""
    async with Outbox(cfg(tmp_path)) as box:
        await box.db.execute("PRAGMA max_page_count=12")
        big = b'"v":"' + b"x" * 3000 + b'"}'
        with pytest.raises(BufferError, match="full"):
            for _ in range(40):
                box.put("t/a", big, False)
                await box.flush()
        held = box.pending()
        assert held > 0 and box.stats.counters["write_errors"] >= 1
        await box.db.execute("PRAGMA max_page_count=100000")
        await box.flush()
        assert box.pending() == 0
        assert len(await seqs(box)) == box.stats.rows == box.stats.counters["captured"]


async def test_second_gateway_on_the_same_file_is_refused(tmp_path):
    async with Outbox(cfg(tmp_path)):
        with pytest.raises(BufferError, match="in use"):
            async with Outbox(cfg(tmp_path)):
                pass


async def test_corrupt_file_is_set_aside_and_capture_goes_on(tmp_path):
    (tmp_path / "buffer.db").write_bytes(b"this is not a database" * 100)
    async with Outbox(cfg(tmp_path)) as box:
        box.put("t/a", b'"v":1}', False)
        await box.flush()
        assert len(await seqs(box)) == 1
    assert list(tmp_path.glob("buffer.db.corrupt-*"))


async def test_context_state_commits_with_its_event(tmp_path):
    async with Outbox(cfg(tmp_path)) as box:
        box.set_context("st10", {"station": "st10", "state": "active", "work_order": "WO-1"})
        box.put("t/context", b'"event":"started"}', True)
        await box.flush()
    async with Outbox(cfg(tmp_path)) as box:
        assert (await box.contexts())["st10"]["work_order"] == "WO-1"
        assert len(await seqs(box)) == 1


async def test_writer_retries_by_itself_after_the_disk_refused(tmp_path):
    async with Outbox(cfg(tmp_path)) as box:
        writer = asyncio.create_task(box.run())
        await box.db.execute("PRAGMA max_page_count=8")
        big = b'"v":"' + b"x" * 3000 + b'"}'
        for _ in range(30):
            box.put("t/a", big, False)
        async with asyncio.timeout(5):
            while not box.stats.counters["write_errors"]:
                await asyncio.sleep(0.01)
        await box.db.execute("PRAGMA max_page_count=100000")
        async with asyncio.timeout(5):  # no new put: the writer itself tries again
            while box.pending():
                await asyncio.sleep(0.01)
        assert box.stats.counters["captured"] == 30
        writer.cancel()


async def test_acknowledged_rows_are_deleted_without_new_rows(tmp_path):
    async with Outbox(cfg(tmp_path)) as box:
        writer = asyncio.create_task(box.run())
        await box.committed(box.put("t/a", b'"v":1}', False))
        (s,) = await seqs(box)
        box.ack([s])
        async with asyncio.timeout(5):
            await box.empty.wait()
        assert box.stats.rows == 0 and box.stats.counters["published"] == 1
        writer.cancel()
