"""The capture log's invariants (see its module docstring), against real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from gateway.capture.log import Log
from gateway.config import JournalConfig
from gateway.errors import BufferError
from tests.conftest import eventually
from tests.gateway.capture.logkit import seqs, take, tel, whole
from tests.helpers import balance
from tests.helpers import buffer_cfg as cfg


async def pages(box: Log, n: int) -> None:
    """Cap the file at n pages: SQLite's "database or disk is full" stands in for a full disk."""
    async with box.db.execute(f"PRAGMA max_page_count={n}") as cur:
        await cur.fetchall()  # a PRAGMA answers with a row: read it, or the statement stays open


def open_log(tmp_path, sinks=("mqtt",), journal=None, **kw) -> Log:
    return Log(cfg(tmp_path, **kw), list(sinks), journal or JournalConfig())


async def test_records_are_captured_only_at_commit_and_survive_reopen(tmp_path):
    async with open_log(tmp_path) as box:
        ticket = tel(box, 1)
        assert await take(box) == []  # queued, not yet captured
        writer = asyncio.create_task(box.run())
        await box.committed(ticket)
        writer.cancel()
        first = await take(box)
        assert len(first) == 1
    async with open_log(tmp_path) as box:
        assert await take(box) == first  # not acknowledged: handed out again after a restart
        assert box.stats.rows == 1 and box.stats.counters["captured"] == 1


async def test_a_poll_of_one_device_is_one_row_of_contiguous_seqs(tmp_path):
    async with open_log(tmp_path, commit_interval=0.05) as box:
        writer = asyncio.create_task(box.run())
        tickets = [tel(box, i, device=f"plc{i % 2}") for i in range(500)]
        assert len(set(tickets)) == 1  # one batch, one fsync
        await box.committed(tickets[-1])
        recs = await take(box)
        assert len(recs) == 500 and seqs(recs) == list(range(recs[0][0], recs[0][0] + 500))
        writer.cancel()
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        rows = db.execute("SELECT device, last - seq + 1 FROM log ORDER BY seq").fetchall()
    assert rows == [("plc0", 250), ("plc1", 250)]
    # Within a device the order of its readings is kept.
    assert [r["value"] for _, r in recs if r["device"] == "plc0"] == list(range(0, 500, 2))


async def test_a_burst_commits_once_it_is_quiet_without_waiting_out_the_interval(tmp_path):
    async with open_log(tmp_path, commit_interval=1.0, commit_quiet=0.05) as box:
        writer = asyncio.create_task(box.run())
        burst = []
        for i in range(5):  # records closer together than commit_quiet: one batch
            burst.append(tel(box, i))
            await asyncio.sleep(0.005)
        assert len(set(burst)) == 1
        # Quiet for 50 ms: committed long before the 1 s interval is out.
        await asyncio.wait_for(box.committed(burst[-1]), 0.5)
        later = tel(box, 9)
        assert later != burst[-1]  # after the commit: the next batch
        await asyncio.wait_for(box.committed(later), 0.5)
        assert len(await take(box)) == 6
        writer.cancel()


async def test_without_commit_quiet_a_batch_waits_out_the_interval(tmp_path):
    async with open_log(tmp_path, commit_interval=0.3, commit_quiet=0) as box:
        writer = asyncio.create_task(box.run())
        ticket = tel(box, 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(box.committed(ticket)), 0.1)
        await box.committed(ticket)
        writer.cancel()


async def test_a_context_change_starts_a_new_chunk(tmp_path):
    async with open_log(tmp_path) as box:
        tel(box, 1, context="ctx-1")
        tel(box, 2, context="ctx-2", version=2)
        tel(box, 3, context="ctx-1")  # joins its own chunk, never the other context's
        await box.flush()
        recs = await take(box)
    assert {r["value"]: r["context_id"] for _, r in recs} == {1: "ctx-1", 2: "ctx-2", 3: "ctx-1"}


async def test_seq_is_never_reused_after_everything_was_delivered_and_pruned(tmp_path):
    journal = JournalConfig(telemetry_bytes=0)
    async with open_log(tmp_path, journal=journal) as box:
        for i in range(5):
            tel(box, i)
        await box.flush()
        s1 = seqs(await take(box))
        assert s1 == list(range(s1[0], s1[0] + 5))
        box.feed("mqtt").ack(s1[0], s1[-1])
        await box.flush()
        assert await box.prune() is False or True
        assert box.stats.rows == 0 and box.stats.journal_rows == 0
    async with open_log(tmp_path, journal=journal) as box:
        tel(box, 9)
        await box.flush()
        assert seqs(await take(box)) == [s1[-1] + 1]


async def test_a_new_file_starts_seq_from_the_clock(tmp_path):
    before = int(time.time() * 1000) * 1000
    async with open_log(tmp_path) as box:
        tel(box)
        await box.flush()
        (s,) = seqs(await take(box))
    assert before < s < (int(time.time() * 1000) + 1) * 1000 + 1


async def test_each_sink_has_its_own_cursor(tmp_path):
    async with open_log(tmp_path, sinks=("uns", "spb")) as box:
        for i in range(10):
            tel(box, i)
        await box.flush()
        a = await take(box, "uns")
        b = await take(box, "spb")
        assert seqs(a) == seqs(b)
        box.feed("uns").ack(a[0][0], a[-1][0])
        box.feed("spb").ack(b[0][0], b[4][0])
        await box.flush()
        assert box.readers["uns"].backlog == 0 and box.readers["spb"].backlog == 5
        assert box.stats.rows == 5  # the backlog is the slowest sink's
    async with open_log(tmp_path, sinks=("uns", "spb")) as box:
        assert await take(box, "uns") == []
        assert seqs(await take(box, "spb")) == seqs(b)[5:]  # resumes after its own cursor
        assert balance(box, "uns") == balance(box, "spb") == 0


async def test_acks_out_of_order_move_the_cursor_only_over_a_settled_prefix(tmp_path):
    async with open_log(tmp_path) as box:
        for i in range(6):
            tel(box, i, device=f"d{i}")  # six chunks
        await box.flush()
        recs = await take(box)
        feed = box.feed("mqtt")
        s = seqs(recs)
        feed.ack(s[3], s[5])
        assert feed.cursor == s[0] - 1
        feed.ack(s[0], s[1])
        assert feed.cursor == s[1]
        feed.rewind()
        assert seqs(await take(box)) == s[2:]  # what was not settled below the cursor comes again


async def test_a_sink_new_to_the_file_starts_with_the_backlog_not_the_journal(tmp_path):
    async with open_log(tmp_path) as box:
        for i in range(4):
            tel(box, i)
        await box.flush()
        recs = await take(box)
        box.feed("mqtt").ack(recs[0][0], recs[1][0])
        await box.flush()
    async with open_log(tmp_path, sinks=("mqtt", "spb")) as box:
        assert seqs(await take(box, "spb")) == seqs(recs)[2:]


async def test_a_dead_letter_keeps_the_record_and_the_reason_per_sink(tmp_path):
    async with open_log(tmp_path, sinks=("uns", "spb")) as box:
        whole(box, "scan", value="]C0X", context_id="c1")
        await box.flush()
        ((s, rec),) = await take(box, "uns")
        box.feed("uns").dead(s, s, "too big")
        await box.flush()
        assert box.stats.dead_rows == 1 and box.readers["uns"].dead_lettered == 1
        assert box.readers["uns"].backlog == 0 and box.readers["spb"].backlog == 1  # the other sink still has it
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        ((seq, sink, reason, record),) = db.execute("SELECT seq, sink, reason, json(record) FROM dead_letter").fetchall()
        assert (seq, sink, reason) == (s, "uns", "too big") and '"value":"]C0X"' in record
        assert db.execute("SELECT count(*) FROM log WHERE seq = ?", (s,)).fetchone()[0] == 1  # the journal keeps it


async def test_drop_oldest_never_discards_protected_records(tmp_path):
    async with open_log(tmp_path, max_rows=100, overflow="drop_oldest") as box:
        for i in range(100):
            if i % 10 == 0:
                whole(box, "scan", i=i)
            else:
                tel(box, i, device=f"d{i}")
        await box.flush()
        for i in range(100, 150):
            tel(box, i, device=f"d{i}")
        await box.flush()
        recs = await take(box)
        assert len(recs) == 100 and box.stats.counters["discarded"] == 50
        assert sum(1 for _, r in recs if r["type"] == "scan") == 10  # every protected record is still there
        kept = [r["value"] for _, r in recs if r["type"] == "telemetry"]
        assert kept == sorted(kept) and kept[-1] == 149 and min(kept) > 50  # the oldest went
        assert balance(box) == 0
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert db.execute("SELECT sum(count) FROM discards").fetchone()[0] == 50
        # Each recorded range holds only discarded seqs: none of the records still there.
        ranges = db.execute("SELECT first_seq, last_seq FROM discards").fetchall()
    assert not [s for s, _ in recs if any(a <= s <= b for a, b in ranges)]


async def test_drop_newest_keeps_old_records_and_protected_new_ones(tmp_path):
    async with open_log(tmp_path, max_rows=100, overflow="drop_newest") as box:
        for i in range(100):
            tel(box, i)
        await box.flush()
        tel(box, 100, device="other")
        whole(box, "scan", i=101)
        await box.flush()
        recs = await take(box)
        assert [r["value"] for _, r in recs[:3]] == [0, 1, 2] and recs[-1][1]["type"] == "scan"
        assert box.stats.counters["discarded"] == 1 and balance(box) == 0


async def test_a_full_disk_keeps_records_in_memory_and_recovers(tmp_path):
    """SQLite's own "database or disk is full" (max_page_count) stands in for a full disk."""
    async with open_log(tmp_path) as box:
        await pages(box, 40)
        with pytest.raises(BufferError, match="full"):
            for i in range(60):
                tel(box, i, device=f"d{i}", size=3000)
                await box.flush()
        assert box.pending() > 0 and box.stats.counters["write_errors"] >= 1
        await pages(box, 100000)
        await box.flush()
        assert box.pending() == 0
        assert len(await take(box)) == box.stats.rows == box.stats.counters["captured"]


async def test_a_second_gateway_on_the_same_file_is_refused(tmp_path):
    async with open_log(tmp_path):
        with pytest.raises(BufferError, match="in use"):
            async with open_log(tmp_path):
                pass


async def test_a_corrupt_file_is_set_aside_and_capture_goes_on(tmp_path):
    (tmp_path / "buffer.db").write_bytes(b"this is not a database" * 100)
    async with open_log(tmp_path) as box:
        tel(box)
        await box.flush()
        assert len(await take(box)) == 1
    assert list(tmp_path.glob("buffer.db.corrupt-*"))


async def test_a_file_of_a_newer_release_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "buffer.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(BufferError, match="format 99"):
        async with open_log(tmp_path):
            pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99


async def test_the_context_state_commits_with_its_event(tmp_path):
    async with open_log(tmp_path) as box:
        box.set_context("st10", {"station": "st10", "state": "active", "work_order": "WO-1"})
        whole(box, "context", device="", event="started", context_id="c1", work_order="WO-1", lot="L-1")
        await box.flush()
    async with open_log(tmp_path) as box:
        assert (await box.contexts())["st10"]["work_order"] == "WO-1"
        assert len(await take(box)) == 1


async def test_the_writer_retries_by_itself_after_the_disk_refused(tmp_path):
    async with open_log(tmp_path) as box:
        writer = asyncio.create_task(box.run())
        await pages(box, 30)
        for i in range(30):
            tel(box, i, device=f"d{i}", size=3000)
        await eventually(lambda: box.stats.counters["write_errors"], what="a refused commit")
        await pages(box, 100000)
        await eventually(lambda: not box.pending(), what="the writer to try again")  # no new put
        assert box.stats.counters["captured"] == 30
        writer.cancel()


async def test_a_cursor_is_written_without_new_records(tmp_path):
    async with open_log(tmp_path) as box:
        writer = asyncio.create_task(box.run())
        await box.committed(tel(box))
        ((s, _),) = await take(box)
        box.feed("mqtt").ack(s, s)
        await asyncio.wait_for(box.empty.wait(), 5)

        def durable():
            with sqlite3.connect(tmp_path / "buffer.db") as db:
                return db.execute("SELECT seq FROM cursors WHERE sink = 'mqtt'").fetchone()[0]

        await eventually(lambda: durable() == s, what="the cursor on disk")
        writer.cancel()


async def test_a_refused_record_is_not_pruned_before_its_dead_letter_is_written(tmp_path):
    async with open_log(tmp_path, journal=JournalConfig(telemetry_bytes=0, keep_days=0)) as box:
        tel(box, 1)
        await box.flush()
        ((s, _),) = await take(box)
        box.feed("mqtt").dead(s, s, "refused")  # the cursor passes it at once; the copy waits for a commit
        while await box.prune():
            pass
        await box.flush()
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert db.execute("SELECT seq, reason FROM dead_letter").fetchall() == [(s, "refused")]


async def test_drop_newest_gives_way_only_as_much_as_needed(tmp_path):
    async with open_log(tmp_path, max_rows=100, overflow="drop_newest") as box:
        for i in range(80):
            tel(box, i)
        await box.flush()
        for i in range(80, 110):
            tel(box, i)  # one batch of 30, 10 too many
        await box.flush()
        recs = await take(box)
        assert [r["value"] for _, r in recs] == list(range(100))  # the newest 10 went, not the whole batch
        assert box.stats.counters["discarded"] == 10 and balance(box) == 0
