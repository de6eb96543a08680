"""The outbox under pressure: overflow while rows are in flight, a disk that refuses writes or does
not answer, the WAL on a small disk, dead-letter limits and file permissions. Real SQLite files."""

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

from gateway.capture import outbox as outbox_mod
from gateway.capture.outbox import Outbox
from gateway.config import BufferConfig
from gateway.errors import BufferError
from tests.helpers import balance
from tests.helpers import buffer_cfg as cfg

BIG = b'"v":"' + b"x" * 3000 + b'"}'


def discarded_seqs(path) -> set[int]:
    with sqlite3.connect(path) as db:
        ranges = db.execute("SELECT first_seq, last_seq FROM discards WHERE first_seq IS NOT NULL").fetchall()
    # drop_oldest records one range per statement; rows in it may have been deleted already (acked),
    # so read the seqs a range covers only against the ones it can have removed: those fetched.
    return {s for a, b in ranges for s in range(a, b + 1)}


async def fill(box: Outbox, n: int, payload: bytes = b'"v":1}', protected: bool = False) -> None:
    for _ in range(n):
        box.put("t/tele", payload, protected)
    await box.flush()


# -- overflow and rows in flight -------------------------------------------------------------------


async def test_overflow_never_discards_rows_in_flight(tmp_path):
    """After a reconnect the publisher sends the oldest rows, exactly what drop_oldest discards."""
    async with Outbox(cfg(tmp_path, max_rows=100)) as box:
        await fill(box, 100)
        sent = [r[0] for r in await box.fetch(0, 60)]  # in flight, awaiting PUBACK
        await fill(box, 50)  # over the limit: 50 must go, none of those in flight
        box.ack(sent)
        await box.flush()
        c = box.stats.counters
        assert c["published"] == 60 and c["discarded"] == 50 and box.stats.rows == 40
        assert balance(box) == 0
    gone = discarded_seqs(tmp_path / "buffer.db")
    assert not gone & set(sent)


async def test_abandoned_rows_may_be_discarded_again(tmp_path):
    async with Outbox(cfg(tmp_path, max_rows=100)) as box:
        await fill(box, 100)
        first = [r[0] for r in await box.fetch(0, 60)]
        box.abandon()  # the connection dropped: nothing awaits a PUBACK
        await fill(box, 10)
        assert [r[0] for r in await box.fetch(0, 1000)][:5] == first[10:15]  # the oldest went


async def test_acked_rows_awaiting_their_delete_are_not_discarded(tmp_path):
    async with Outbox(cfg(tmp_path, max_rows=100)) as box:
        await fill(box, 100)
        sent = [r[0] for r in await box.fetch(0, 100)]
        box.ack(sent)  # delivered; the delete rides with the next commit
        box.put("t/tele", b'"v":2}', False)
        await box.flush()
        assert box.stats.counters["published"] == 100 and box.stats.counters["discarded"] == 0


async def test_reconnect_at_full_buffer_reports_no_loss_that_did_not_happen(tmp_path, broker):
    """A real mosquitto and a real publisher: delivered seqs and discarded seqs never overlap, and
    every captured reading is delivered, buffered, dead-lettered or discarded."""
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
        assert balance(gw.gw.outbox) == 0, st["counters"]
        await up.wait(lambda rs: len({r["seq"] for r in rs}) >= st["counters"]["published"])
    delivered = {r["seq"] for r in up.records if r["type"] == "telemetry"}
    both = delivered & discarded_seqs(tmp_path / "buffer.db")
    assert not both, f"{len(both)} seqs counted as discarded were delivered"


# -- a disk that refuses writes -------------------------------------------------------------------


async def test_memory_shed_is_logged_once_per_episode_with_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(outbox_mod, "MAX_PENDING", 100)
    async with Outbox(cfg(tmp_path)) as box:
        await box.db.execute("PRAGMA max_page_count=8")
        with capture_logs() as logs:
            for _ in range(20):  # capture goes on while every retry fails
                for _ in range(50):
                    box.put("t/a", BIG, False)
                with pytest.raises(BufferError):
                    await box.flush()
            assert box.pending() == 100
            await box.db.execute("PRAGMA max_page_count=100000")
            await box.flush()
        shed = [e for e in logs if e["event"] == "buffer_memory_shed"]
        assert len(shed) == 1 and shed[0]["discarded"] > 0
        (rec,) = [e for e in logs if e["event"] == "buffer_write_recovered"]
        assert rec["shed_from_memory"] == box.stats.counters["shed"] == 20 * 50 - 100
        assert [e["event"] for e in logs].count("buffer_write_failed") == 1


async def test_backlog_recovers_in_bounded_transactions_with_little_free_space(tmp_path):
    """6 MB held in memory, then room for about 2 MB: chunks commit and the publisher's acks make
    room for the next ones; one transaction of the whole backlog would never fit."""
    async with Outbox(cfg(tmp_path, commit_rows=100)) as box:
        await box.db.execute("PRAGMA max_page_count=8")
        for _ in range(2000):
            box.put("t/a", BIG, False)
        with pytest.raises(BufferError):
            await box.flush()
        pages = (await (await box.db.execute("PRAGMA page_count")).fetchone())[0]
        await box.db.execute(f"PRAGMA max_page_count={pages + 500}")
        for _ in range(100):
            if not box.pending():
                break
            with pytest.raises(BufferError) if box.pending() > 600 else _maybe():
                await box.flush()
            box.ack([r[0] for r in await box.fetch(0, 10_000)])
        assert box.pending() == 0
        assert box.stats.counters["captured"] == 2000 and balance(box) == 0


class _maybe:
    """A flush near the end may fit entirely or not: either is fine."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is BufferError


async def test_wal_stays_small_after_a_large_backlog(tmp_path):
    async with Outbox(cfg(tmp_path)) as box:
        for _ in range(7000):  # 21 MB at once, as after a long outage of the disk
            box.put("t/a", BIG, False)
        await box.flush()
        rows = [r[0] for r in await box.fetch(0, 10_000)][:-40]
        for i in range(0, len(rows), 2000):  # as PUBACKs come in
            box.ack(rows[i : i + 2000])
            await box.flush()
        assert box.stats.rows == 40
        wal = os.path.getsize(tmp_path / "buffer.db-wal")
        assert wal <= 2 * outbox_mod.CHUNK_BYTES, wal


async def test_flush_ends_in_time_when_the_disk_does_not_answer(tmp_path):
    """A commit stuck in the kernel (here: the database thread blocked) must not hang a stop."""
    async with Outbox(cfg(tmp_path)) as box:
        release = threading.Event()
        stuck = asyncio.ensure_future(box.db._execute(release.wait))
        try:
            for _ in range(10):
                box.put("t/a", b'"v":1}', False)
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
    async with Outbox(cfg(tmp_path)) as box:
        await box.db.execute("PRAGMA max_page_count=8")
        for _ in range(50_000):
            box.put("t/a", b'"v":1}', False)
        async with asyncio.timeout(5):
            with pytest.raises(BufferError, match="full"):
                await box.flush()
        assert box.pending() == 50_000
        await box.db.execute("PRAGMA max_page_count=100000")


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
    through it while a publisher acknowledges, and the WAL ends small. One transaction of the whole
    backlog could never commit, and each attempt would leave a WAL as large as the disk."""
    async with Outbox(cfg(disk, commit_rows=100)) as box:
        await fill(box, 40, BIG)
        keep = {r[0] for r in await box.fetch(0, 100)}

        async def publisher():
            while True:
                box.new_rows.clear()
                box.ack([r[0] for r in await box.fetch(0, 100_000) if r[0] not in keep])
                await box.new_rows.wait()

        tasks = [asyncio.create_task(box.run()), asyncio.create_task(publisher())]
        for _ in range(7000):
            box.put("t/a", BIG, False)
        async with asyncio.timeout(60):
            while box.pending() or box.stats.rows > 40:
                await asyncio.sleep(0.02)
        for t in tasks:
            t.cancel()
        await box.flush()
        assert box.stats.rows == 40 and balance(box) == 0
        wal = os.path.getsize(disk / "buffer.db-wal")
        assert wal <= outbox_mod.WAL_LIMIT + outbox_mod.CHUNK_BYTES, wal
        assert shutil.disk_usage(disk).free > 4 * 1024 * 1024


# -- dead letters ----------------------------------------------------------------------------------


async def test_dead_letters_are_pruned_oldest_first_within_their_limits(tmp_path):
    eight_mb = b'"v":"' + b"x" * (8 * 1024 * 1024) + b'"}'
    with capture_logs() as logs:
        async with Outbox(cfg(tmp_path, max_bytes=32 * 1024**2, dead_letter_max_bytes=20 * 1024**2)) as box:
            for _ in range(10):  # an OPC UA server sending 8 MB strings the broker cannot take
                box.put("t/opcua", eight_mb, False)
                await box.flush()
                (s,) = [r[0] for r in await box.fetch(0, 10)]
                box.dead([s], "record too big")
                await box.flush()
            assert box.stats.dead_bytes <= 20 * 1024**2 and box.stats.dead_rows == 2
            assert box.stats.counters["dead_letter_pruned"] == 8 and balance(box) == 0
            last = s
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        assert [r[0] for r in db.execute("SELECT seq FROM dead_letter ORDER BY seq")][-1] == last
    assert os.path.getsize(tmp_path / "buffer.db") < 60 * 1024**2
    assert [e["event"] for e in logs].count("dead_letter_pruned") == 1


async def test_dead_letter_row_limit(tmp_path):
    async with Outbox(cfg(tmp_path, dead_letter_max_rows=5)) as box:
        await fill(box, 20)
        box.dead([r[0] for r in await box.fetch(0, 100)], "refused")
        await box.flush()
        assert box.stats.dead_rows == 5 and box.stats.counters["dead_letter_pruned"] == 15


# -- permissions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o000])
async def test_files_are_private_and_folders_0750_at_most(tmp_path, mask):
    old = os.umask(mask)
    try:
        path = tmp_path / "state" / "gw" / "buffer.db"
        async with Outbox(BufferConfig(path=path)) as box:
            await fill(box, 3)
            files = [path, path.with_name("buffer.db-wal"), path.with_name("buffer.db-shm"), path.with_name("buffer.db.lock")]
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(modes, 0o600)
    for d in (tmp_path / "state", tmp_path / "state" / "gw"):
        assert stat.S_IMODE(d.stat().st_mode) & ~0o750 == 0, oct(d.stat().st_mode)
