"""The capture log under pressure: overflow while records are in flight (one sink and two), a disk
that refuses writes or does not answer, the WAL on a small disk, dead-letter limits and file
permissions. Real SQLite files."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import subprocess
import threading

import pytest
from structlog.testing import capture_logs

from gateway.capture import log as log_mod
from gateway.capture.log import Log
from gateway.config import BufferConfig, JournalConfig
from gateway.errors import BufferError
from tests.gateway.capture.feedkit import drain, fill, seqs, take, telemetry, until
from tests.helpers import balance
from tests.helpers import buffer_cfg as cfg

BIG = b'{"tag":"t","value":"' + b"x" * 3000 + b'"}'
NO_JOURNAL = JournalConfig(telemetry_bytes=0, prune_interval=0.05)  # delivered telemetry goes at once


def discarded_seqs(path) -> set[int]:
    with sqlite3.connect(path) as db:
        ranges = db.execute("SELECT first_seq, last_seq FROM discards WHERE first_seq IS NOT NULL").fetchall()
    return {s for a, b in ranges for s in range(a, b + 1)}


async def pragma(box: Log, text: str) -> int:
    """Run a PRAGMA on the log's connection between its transactions (its row read, so no
    statement stays open across the next commit)."""
    async with box.lock:
        return box.db._conn.execute(f"PRAGMA {text}").fetchone()[0]


async def disk_full(box: Log, room: int = 0) -> None:
    """The file may grow by `room` pages from now on, no more."""
    await pragma(box, f"max_page_count={await pragma(box, 'page_count') + room}")


# -- overflow and records in flight ----------------------------------------------------------------


async def test_overflow_never_discards_records_in_flight(tmp_path):
    """After a reconnect a sink is handed the oldest records, exactly what drop_oldest discards."""
    async with Log(cfg(tmp_path, max_rows=100), ["mqtt"]) as box:
        feed = box.feed("mqtt")
        await fill(box, 100)
        sent = await take(feed, 60)  # in flight, awaiting PUBACK
        assert len(sent) == 60
        await fill(box, 50)  # over the limit: 50 must go, none of those in flight
        feed.ack(sent[0], sent[-1])
        await box.flush()
        assert feed.acked == 60 and box.stats.counters["discarded"] == 50 and box.stats.rows == 40
        assert balance(box) == 0
    gone = discarded_seqs(tmp_path / "buffer.db")
    assert len(gone) == 50 and not gone & set(sent)


async def test_rewound_records_may_be_discarded_again(tmp_path):
    async with Log(cfg(tmp_path, max_rows=100), ["mqtt"]) as box:
        feed = box.feed("mqtt")
        await fill(box, 100)
        first = await take(feed, 60)
        feed.rewind()  # the connection dropped: nothing awaits a PUBACK
        await fill(box, 10)
        assert (await take(feed))[:5] == first[10:15]  # the oldest went
        assert balance(box) == 0


async def test_acknowledged_records_are_not_discarded(tmp_path):
    async with Log(cfg(tmp_path, max_rows=100), ["mqtt"]) as box:
        feed = box.feed("mqtt")
        await fill(box, 100)
        sent = await take(feed, 100)
        feed.ack(sent[0], sent[-1])  # delivered; the cursor rides with the next commit
        telemetry(box, 1)
        await box.flush()
        assert feed.acked == 100 and box.stats.counters["discarded"] == 0 and balance(box) == 0


async def test_overflow_with_two_sinks_discards_only_what_no_sink_has_in_flight(tmp_path):
    """One sink acknowledged everything, the other holds its oldest records in flight: the
    overflow takes records the slow sink has not been handed, and each sink's account is exact."""
    async with Log(cfg(tmp_path, max_rows=100), ["mqtt", "archive"]) as box:
        fast, slow = box.feed("mqtt"), box.feed("archive")
        await fill(box, 100)
        done = await take(fast, 100)
        fast.ack(done[0], done[-1])
        held = await take(slow, 30)
        await fill(box, 50)  # the slow sink's backlog: 150 > 100
        gone = discarded_seqs(tmp_path / "buffer.db")
        assert len(gone) == 50 and not gone & set(held)
        assert fast.backlog == 50 and slow.backlog == 100
        assert balance(box, "mqtt") == 0 and balance(box, "archive") == 0
        slow.ack(held[0], held[-1])
        rest = await drain(slow)
        assert not set(rest) & gone and len(rest) == 70
        slow.ack(rest[0], rest[-1])
        new = await drain(fast)
        fast.ack(new[0], new[-1])
        await box.flush()
        assert balance(box, "mqtt") == 0 and balance(box, "archive") == 0
        assert fast.backlog == slow.backlog == 0
    # The counters (per sink) survive a restart.
    async with Log(cfg(tmp_path, max_rows=100), ["mqtt", "archive"]) as box:
        assert balance(box, "mqtt") == 0 and balance(box, "archive") == 0


async def test_reconnect_at_full_buffer_reports_no_loss_that_did_not_happen(tmp_path, broker):
    """A real mosquitto and a real sink: delivered seqs and discarded seqs never overlap, and every
    captured reading is delivered, buffered, dead-lettered or discarded."""
    from tests.conftest import InProcess, Upstream, write_config

    path = write_config(
        tmp_path,
        broker.port,
        [{"kind": "synthetic", "name": "press", "rate": 2000, "tags": 4, "limit": 8000}],
        buffer={"max_rows": 300},
        mqtt={"max_pack": 5, "max_inflight": 32},
    )
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
        await up.wait(lambda rs: len(rs) >= 50)
        broker.stop()
        await gw.wait_status(lambda st: st["counters"]["discarded"] > 300)
        broker.start()
        st = await gw.wait_status(lambda st: st["counters"]["captured"] == 8000 and st["buffer"]["rows"] == 0 and not st["broker"]["inflight"], timeout=60)
        assert balance(gw.gw.log) == 0, st["counters"]
        await up.wait(lambda rs: len({r["seq"] for r in rs}) >= st["counters"]["published"])
    delivered = {r["seq"] for r in up.records if r["type"] == "telemetry"}
    both = delivered & discarded_seqs(tmp_path / "buffer.db")
    assert not both, f"{len(both)} seqs counted as discarded were delivered"


# -- a disk that refuses writes -------------------------------------------------------------------


async def test_the_log_commits_again_after_a_failed_write(tmp_path):
    async with Log(cfg(tmp_path), ["mqtt"]) as box:
        await disk_full(box)
        telemetry(box, 10, BIG)
        with pytest.raises(BufferError, match="full"):
            await box.flush()
        await pragma(box, "max_page_count=100000")
        await box.flush()  # recovered (the WAL checkpointed after the failure and after this)
        telemetry(box, 10)
        await box.flush()
        assert box.stats.counters["captured"] == 20 and box.stats.counters["write_errors"] == 1


async def test_memory_shed_is_logged_once_per_episode_with_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(log_mod, "MAX_PENDING", 100)
    async with Log(cfg(tmp_path), ["mqtt"]) as box:
        await disk_full(box)
        with capture_logs() as logs:
            for _ in range(20):  # capture goes on while every retry fails
                telemetry(box, 50, BIG)
                with pytest.raises(BufferError):
                    await box.flush()
            assert box.pending() == 100
            await pragma(box, "max_page_count=100000")
            await box.flush()
        shed = [e for e in logs if e["event"] == "buffer_memory_shed"]
        assert len(shed) == 1 and shed[0]["discarded"] > 0
        (rec,) = [e for e in logs if e["event"] == "buffer_write_recovered"]
        assert rec["shed_from_memory"] == box.stats.counters["shed"] == 20 * 50 - 100
        assert [e["event"] for e in logs].count("buffer_write_failed") == 1
        assert box.stats.counters["captured"] == 100


async def test_backlog_recovers_in_bounded_transactions_with_little_free_space(tmp_path):
    """6 MB held in memory, then room for about 2 MB: chunks commit, and the sink's acks let the
    journal's retention make room for the next ones; one transaction of the whole backlog (or of
    one 1000-record batch, 3 MB) would never fit."""
    async with Log(cfg(tmp_path, commit_rows=100), ["mqtt"], NO_JOURNAL) as box:
        feed = box.feed("mqtt")
        await disk_full(box)
        telemetry(box, 2000, BIG)
        with pytest.raises(BufferError):
            await box.flush()
        await disk_full(box, 500)
        for _ in range(100):
            if not box.pending():
                break
            with pytest.raises(BufferError) if box.pending() > 600 else _maybe():
                await box.flush()
            if got := await drain(feed):
                feed.ack(got[0], got[-1])
                while await box.prune():
                    pass
        assert box.pending() == 0
        assert box.stats.counters["captured"] == 2000 and balance(box) == 0


class _maybe:
    """A flush near the end may fit entirely or not: either is fine."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is BufferError


async def test_wal_stays_small_after_a_large_backlog(tmp_path):
    async with Log(cfg(tmp_path), ["mqtt"]) as box:
        feed = box.feed("mqtt")
        telemetry(box, 7000, BIG)  # 21 MB at once, as after a long outage of the disk
        await box.flush()
        rows = (await drain(feed))[:-40]
        for i in range(0, len(rows), 2000):  # as PUBACKs come in
            feed.ack(rows[i], rows[min(i + 2000, len(rows)) - 1])
            await box.flush()
        assert box.stats.rows == 40
        wal = os.path.getsize(tmp_path / "buffer.db-wal")
        assert wal <= 2 * log_mod.CHUNK_BYTES, wal


async def test_flush_ends_in_time_when_the_disk_does_not_answer(tmp_path):
    """A commit stuck in the kernel (here: the database thread blocked) must not hang a stop."""
    async with Log(cfg(tmp_path), ["mqtt"]) as box:
        release = threading.Event()
        stuck = asyncio.ensure_future(box.db._execute(release.wait))
        try:
            telemetry(box, 10)
            async with asyncio.timeout(5):
                with pytest.raises(BufferError, match="did not complete"):
                    await box.flush(timeout=0.5)
            assert box.pending() == 10  # not captured, and said so
        finally:
            release.set()
            await stuck
        await box.flush()
        assert box.pending() == 0 and box.stats.counters["captured"] == 10


async def test_flush_raises_within_a_bound_on_a_full_disk_with_a_big_backlog(tmp_path):
    async with Log(cfg(tmp_path), ["mqtt"]) as box:
        await disk_full(box)
        telemetry(box, 50_000)
        async with asyncio.timeout(5):
            with pytest.raises(BufferError, match="full"):
                await box.flush()
        assert box.pending() == 50_000
        await pragma(box, "max_page_count=100000")


def small_disk(folder, size: str):
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    return folder


@pytest.fixture
def disk(tmp_path):
    folder = small_disk(tmp_path / "disk", "12m")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


async def test_backlog_drains_through_a_small_disk(disk):
    """A real small disk (tmpfs, 12 MB): 21 MB held in memory (after an outage of the disk) drain
    through it while a sink acknowledges and retention lets delivered telemetry go, and the WAL
    ends small. One transaction of the whole backlog could never commit, and each attempt would
    leave a WAL as large as the disk."""
    async with Log(cfg(disk, commit_rows=100), ["mqtt"], NO_JOURNAL) as box:
        feed = box.feed("mqtt")

        async def sink():
            while True:
                got = seqs(await feed.next(100_000))
                feed.ack(got[0], got[-1])

        tasks = [asyncio.create_task(box.run()), asyncio.create_task(sink())]
        telemetry(box, 7000, BIG)
        try:
            await until(lambda: not box.pending() and box.stats.rows == 0 and box.stats.journal_rows == 0, 60, "the backlog to drain")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await box.flush()
        assert box.stats.counters["captured"] == 7000 and balance(box) == 0
        wal = os.path.getsize(disk / "buffer.db-wal")
        assert wal <= log_mod.WAL_LIMIT + log_mod.CHUNK_BYTES, wal
        assert shutil.disk_usage(disk).free > 4 * 1024 * 1024


# -- dead letters ----------------------------------------------------------------------------------


async def test_dead_letters_are_pruned_oldest_first_within_their_limits(tmp_path):
    eight_mb = b'{"tag":"t","value":"' + b"x" * (8 * 1024 * 1024) + b'"}'
    with capture_logs() as logs:
        async with Log(cfg(tmp_path, max_bytes=32 * 1024**2, dead_letter_max_bytes=20 * 1024**2), ["mqtt"], NO_JOURNAL) as box:
            feed = box.feed("mqtt")
            for _ in range(10):  # an OPC UA server sending 8 MB strings the broker cannot take
                telemetry(box, 1, eight_mb, device="opcua")
                await box.flush()
                (s,) = await take(feed, 10)
                feed.dead(s, s, "record too big")
                await box.flush()
                while await box.prune():
                    pass
            assert box.stats.dead_bytes <= 20 * 1024**2 and box.stats.dead_rows == 2
            assert box.stats.counters["dead_letter_pruned"] == 8 and balance(box) == 0
            last = s
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert [r[0] for r in db.execute("SELECT seq FROM dead_letter ORDER BY seq")][-1] == last
    assert os.path.getsize(tmp_path / "buffer.db") < 60 * 1024**2
    assert [e["event"] for e in logs].count("dead_letter_pruned") == 1


async def test_dead_letter_row_limit(tmp_path):
    async with Log(cfg(tmp_path, dead_letter_max_rows=5), ["mqtt"]) as box:
        feed = box.feed("mqtt")
        await fill(box, 20, per=20)
        got = await take(feed)
        feed.dead(got[0], got[-1], "refused")
        await box.flush()
        assert box.stats.dead_rows == 5 and box.stats.counters["dead_letter_pruned"] == 15
        assert feed.dead_lettered == 20 and balance(box) == 0


# -- permissions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o000])
async def test_files_are_private_and_folders_0750_at_most(tmp_path, mask):
    old = os.umask(mask)
    try:
        path = tmp_path / "state" / "gw" / "buffer.db"
        async with Log(BufferConfig(path=path), ["mqtt"]) as box:
            await fill(box, 3)
            files = [path, path.with_name("buffer.db-wal"), path.with_name("buffer.db-shm"), path.with_name("buffer.db.lock")]
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(modes, 0o600)
    for d in (tmp_path / "state", tmp_path / "state" / "gw"):
        assert stat.S_IMODE(d.stat().st_mode) & ~0o750 == 0, oct(d.stat().st_mode)
