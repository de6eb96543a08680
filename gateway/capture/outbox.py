"""The durable outbox: every reading is a row here until the broker has acknowledged it.

Invariants (design.md §4). Code below must keep them; tests in tests/gateway/capture/test_outbox.py show them.

1. Captured means committed. `put()` only queues a row in memory; it is captured when the group
   commit that holds it returns. Nothing is acknowledged to a device or an operator before that:
   `committed(ticket)` resolves only after the commit.
2. Group commit. Rows are written in one transaction every `commit_interval` seconds or every
   `commit_rows` rows, whichever comes first, so fsync is paid once per batch.
3. `seq` is the row id: contiguous for committed rows, strictly increasing, never reused. The table
   uses AUTOINCREMENT (SQLite keeps the high-water mark in sqlite_sequence, so deleting rows or
   emptying the buffer never lowers it), and a new database starts at `unix_ms * 1000`, so even a
   deleted buffer file does not repeat a seq a consumer has seen. A crash before commit loses only
   rows that were never captured, and no seq is burnt for them.
4. A row is deleted only after the broker acknowledged the message that carried it (`ack()`), or when
   it moves to `dead_letter` with a reason (`dead()`), or when the overflow policy discards it.
   Each row is in exactly one of: the outbox, delivered (`published`), `dead_letter`, discarded.
5. Overflow. Past `max_rows` or `max_bytes` the policy discards the oldest (or the newest) rows that are
   not protected. Protected rows (scans, RFID reads, alarms, context events) are never discarded, nor
   is a row in flight: handed out by `fetch()` and neither acknowledged, dead-lettered nor given back
   by `abandon()` (the publisher calls it when its connection drops), so a row counted as discarded
   never reaches the broker. Every discarded row is counted, its seq range recorded in `discards`, and
   the episode is logged once when it starts and once when it ends.
8. Dead letters have their own limits (`dead_letter_max_rows/bytes`); past them the oldest dead
   letters are pruned, counted (`dead_letter_pruned`) and the episode logged once when it starts and
   once when it ends. `requeue_dead()` moves dead letters back into the outbox under new seqs
   (counted as `requeued`, not as captured again); `purge_dead()` deletes them (`dead_letter_purged`).
   So captured + requeued == published + discarded (of committed rows) + dead_lettered + rows.
6. Restart. After a crash or a power cut (synchronous=FULL, WAL) the outbox reopens with exactly the
   committed rows; the publisher starts from the lowest seq, so unacknowledged rows are sent again.
   The station context lives in the same file and is updated in the same transaction as the event
   that journals the change.
7. One writer. Only this object writes the file; a second gateway on the same file is refused by an
   exclusive lock on `<path>.lock`. The file, its -wal and -shm and the lock are created 0600.

Disk full or I/O errors roll the batch back and keep it in memory (bounded in rows and bytes; past
that telemetry is shed, counted as discarded); the error is logged once per episode and counted, and
writing is retried. A transaction holds at most `commit_rows` rows and CHUNK_BYTES, so recovering
from a long episode needs little free space, and the WAL is truncated after a failure and after the
recovery (journal_size_limit bounds it otherwise). `flush()` ends within its timeout whatever the
disk does: committed, or BufferError with the rows still counted by `pending()`.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
import structlog

from gateway.config import BufferConfig
from gateway.errors import BufferError

log = structlog.get_logger("gateway.capture.outbox")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    protected INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_droppable ON outbox(seq) WHERE protected = 0;
CREATE TABLE IF NOT EXISTS dead_letter(
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    protected INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS discards(
    id INTEGER PRIMARY KEY,
    first_seq INTEGER,
    last_seq INTEGER,
    count INTEGER NOT NULL,
    policy TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS context(station TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
COUNTERS = ("captured", "published", "dead_lettered", "discarded", "shed", "write_errors", "requeued", "dead_letter_pruned", "dead_letter_purged")
ACK_DELAY = 0.2  # longest a delete of acknowledged rows waits for a commit to ride along with
MAX_PENDING = 200_000  # rows held in memory while the disk refuses writes
MAX_PENDING_BYTES = 64 * 1024 * 1024  # payload bytes held in memory while the disk refuses writes
LIVE_MAX = 5_000  # committed rows kept in memory for a caught-up publisher (a few commits)
CHUNK_BYTES = 4 * 1024 * 1024  # payload bytes in one transaction (about one WAL auto-checkpoint)
WAL_LIMIT = 4 * 1024 * 1024  # journal_size_limit: what the WAL file keeps after a checkpoint
FLUSH_TIMEOUT = 10.0  # longest `flush()` waits for the disk
FILE_MODE = 0o600
DIR_MODE = 0o750  # the group may reach the control socket (0660) next to the buffer


@dataclass(slots=True)
class Row:
    topic: str
    payload: bytes  # the record's JSON without its opening brace; the publisher prepends `{"seq":N,`
    protected: bool
    at: float


@dataclass
class Stats:
    rows: int = 0
    bytes: int = 0
    dead_rows: int = 0
    dead_bytes: int = 0
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))


class BufferLocked(BufferError):
    """Another process (a running gateway, or a command run without one) holds the buffer's lock."""


class Outbox:
    """Owns the SQLite file. Use as `async with Outbox(cfg) as box:`; run `box.run()` as a task."""

    def __init__(self, cfg: BufferConfig):
        self.cfg = cfg
        self.db: aiosqlite.Connection | None = None
        self.stats = Stats()
        # Per topic, since this process started (for /metrics; the file's counters are gateway-wide).
        self.captured_by: Counter[str] = Counter()
        self.discarded_by: Counter[str] = Counter()
        self.lock = asyncio.Lock()  # one transaction at a time; a fetch never sees a half-written one
        self._writer = asyncio.Lock()  # one flush at a time, each in one or more transactions
        self.new_rows = asyncio.Event()  # set after a commit that inserted rows
        self.empty = asyncio.Event()  # set while no row awaits delivery
        self._pending: list[Row] = []
        self._writing = 0  # rows taken from _pending by the transaction under way
        self._context: dict[str, str] = {}
        self._acks: list[int] = []
        self._acked: set[int] = set()  # acknowledged, delete not yet committed: never re-sent
        self._inflight: set[int] = set()  # handed out by fetch(), not yet acked, dead or abandoned
        self._ceiling = 0  # highest seq fetch() handed out
        self._dead: list[tuple[int, str]] = []
        self._batch = 0  # number of the batch `put()` currently fills
        self._done = -1  # highest committed batch
        self._waiters: dict[int, asyncio.Future] = {}
        self._wake = asyncio.Event()  # new rows or context: commit within commit_interval
        self._work = asyncio.Event()  # anything to commit, deletes included
        self._full = asyncio.Event()
        self._lockfile: int | None = None
        self._overflow = Episode("buffer_overflow", "buffer_overflow_ended")
        self._pruning = Episode("dead_letter_pruned", "dead_letter_pruning_ended")
        self._failing: str | None = None
        self._shed = 0  # telemetry shed from memory in the current write-failure episode
        self._live: deque[tuple[int, str, bytes, float]] = deque()
        self._live_broken = False

    # -- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Outbox:
        path = self.cfg.path
        try:
            make_dirs(path.parent)
            self._lockfile = take_lock(path)
            create_private(path)
        except OSError as exc:
            self._unlock()
            raise BufferError(f"buffer.path {path}: cannot use it: {exc.strerror or exc}") from None
        try:
            self.db = await self._open(path)
        except sqlite3.OperationalError as exc:
            # Cannot open or write the file (permissions, read-only or missing folder): not corruption.
            self._unlock()
            raise BufferError(f"buffer.path {path}: cannot open it: {exc}") from None
        except sqlite3.DatabaseError as exc:
            # A corrupt file must not stop capture: set it aside for recovery and start afresh.
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(path) + suffix)
                if src.exists():
                    src.rename(str(aside) + suffix)
            log.error("buffer_quarantined", path=str(path), moved_to=str(aside), error=str(exc))
            create_private(path)
            self.db = await self._open(path)
        self._track_empty()
        return self

    async def _open(self, path: Path) -> aiosqlite.Connection:
        # check_same_thread=False: statements run on the loop, the commit in aiosqlite's thread (see _write).
        db = await aiosqlite.connect(path, check_same_thread=False)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={self.cfg.synchronous.upper()}")
            await db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            await db.executescript(SCHEMA)
            async with db.execute("SELECT 1 FROM pragma_table_info('dead_letter') WHERE name='protected'") as cur:
                if await cur.fetchone() is None:  # a file from before dead letters could be requeued
                    await db.execute("ALTER TABLE dead_letter ADD COLUMN protected INTEGER NOT NULL DEFAULT 0")
            async with db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'") as cur:
                if await cur.fetchone() is None:
                    await db.execute(
                        "INSERT INTO sqlite_sequence(name, seq) VALUES('outbox', ?)", (int(time.time() * 1000) * 1000,)
                    )
            async with db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox") as cur:
                self.stats.rows, self.stats.bytes = await cur.fetchone()
            async with db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM dead_letter") as cur:
                self.stats.dead_rows, self.stats.dead_bytes = await cur.fetchone()
            async with db.execute("SELECT value FROM meta WHERE key='counters'") as cur:
                row = await cur.fetchone()
            if row:
                self.stats.counters.update(orjson.loads(row[0]))
            await db.commit()
        except BaseException:
            await db.close()
            raise
        return db

    async def __aexit__(self, *exc) -> None:
        if self.db is not None:
            try:
                await self.flush()
            finally:
                await self._close()
        self._unlock()

    async def _close(self) -> None:
        db, self.db = self.db, None
        try:
            async with asyncio.timeout(FLUSH_TIMEOUT):
                async with self._writer, self.lock:
                    await _checkpoint(db)
                await db.close()
        except TimeoutError:
            # The disk does not answer; the kernel releases the file when the process ends.
            log.error("buffer_close_timeout", seconds=FLUSH_TIMEOUT, not_captured=self.pending())

    def _unlock(self) -> None:
        if self._lockfile is not None:
            os.close(self._lockfile)
            self._lockfile = None

    # -- writing ------------------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, protected: bool, urgent: bool = False) -> int:
        """Queue one row for the next group commit; return the ticket for `committed()`.

        `urgent`: someone waits for this row (an operator for the scanner's beep): commit now
        instead of waiting out the group-commit interval. Scans are rare, so this costs nothing.
        """
        self._pending.append(Row(topic, payload, protected, time.time()))
        if not self._wake.is_set():
            self._wake.set()
            self._work.set()
        if urgent or len(self._pending) >= self.cfg.commit_rows:
            self._full.set()
        return self._batch

    def set_context(self, station: str, state: dict) -> int:
        """Persist a station's context in the same transaction as the rows queued with it."""
        self._context[station] = orjson.dumps(state).decode()
        self._wake.set()
        self._work.set()
        return self._batch

    def ack(self, seqs: Iterable[int]) -> None:
        """The broker acknowledged these rows: delete them with the next commit.

        Deletes ride along with the next commit of new rows, or wait at most ACK_DELAY: a delete
        lost in a crash only means a duplicate, so it is not worth an fsync of its own.
        """
        self._acks.extend(seqs)
        self._acked.update(seqs)
        self._inflight.difference_update(seqs)
        self._work.set()

    def dead(self, seqs: Iterable[int], reason: str) -> None:
        """Move rows to the dead-letter table for good, with the reason."""
        for s in seqs:
            self._dead.append((s, reason))
            self._acked.add(s)
            self._inflight.discard(s)
        self._work.set()

    def abandon(self) -> None:
        """The reader's connection dropped: the rows it fetched are no longer in flight (they stay
        in the outbox, are fetched again, and the overflow policy may discard them meanwhile)."""
        self._inflight.clear()
        self._ceiling = 0

    async def committed(self, ticket: int) -> None:
        """Return once the batch holding `ticket` is committed (captured)."""
        if ticket <= self._done:
            return
        fut = self._waiters.get(ticket)
        if fut is None:
            fut = self._waiters[ticket] = asyncio.get_running_loop().create_future()
        await asyncio.shield(fut)

    async def run(self) -> None:
        """The group-commit loop; runs until cancelled."""
        while True:
            await self._work.wait()
            self._work.clear()
            if not self._wake.is_set():  # only deletes to do: let them pile up a little
                try:
                    async with asyncio.timeout(ACK_DELAY):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            if self._wake.is_set() and len(self._pending) < self.cfg.commit_rows:
                try:
                    async with asyncio.timeout(self.cfg.commit_interval):
                        await self._full.wait()
                except TimeoutError:
                    pass
            try:
                await self.flush()
            except BufferError:
                await asyncio.sleep(0.5)  # the disk refused; the batch is kept, try again shortly

    async def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Commit everything queued now, or raise BufferError within `timeout` seconds.

        The commit itself is not interruptible: on a stop or a timeout it goes on in the background
        and ends committed, or rolled back and requeued, so no row is ever in neither memory nor the
        file; meanwhile `pending()` counts its rows as not captured.
        """
        done = asyncio.ensure_future(self._flush())
        done.add_done_callback(_retrieve)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(done)
        except TimeoutError:
            raise BufferError(f"the disk did not complete a commit within {timeout:g} s; {self.pending()} readings not captured") from None
        except asyncio.CancelledError:
            await asyncio.wait([done], timeout=timeout)
            raise

    async def _flush(self) -> None:
        async with self._writer:
            if self.db is None:
                raise BufferError("the buffer is closed")
            # Taken under the writer lock, so transactions commit rows in the order they were put
            # and a ticket is released only when every row queued before it is in the file.
            self._wake.clear()
            self._full.clear()
            rows, self._pending = self._pending, []
            context, self._context = self._context, {}
            batch = self._batch
            self._batch += 1
            self._writing = len(rows)
            wrote = False
            try:
                while True:
                    # Deliveries acknowledged meanwhile free room: delete them with each chunk.
                    acks, self._acks = self._acks, []
                    dead, self._dead = self._dead, []
                    if not (rows or context or acks or dead):
                        break
                    n = _chunk(rows, self.cfg.commit_rows)
                    try:
                        async with self.lock:  # per transaction: the publisher fetches in between
                            await self._write(rows[:n], context, acks, dead)
                    except sqlite3.Error as exc:
                        self._requeue(rows, context, acks, dead)
                        await self._failed(exc)
                        raise BufferError(str(exc)) from exc
                    wrote = True
                    del rows[:n]
                    self._writing = len(rows)
                    context = {}
                    if not rows:
                        break
            finally:
                self._writing = 0
            if wrote and self._failing is not None:
                await self._recovered()
        self._release(batch)
        self._track_empty()

    async def _failed(self, exc: sqlite3.Error) -> None:
        self.stats.counters["write_errors"] += 1
        if self._failing is None:
            self._failing = str(exc)
            log.error("buffer_write_failed", error=str(exc), held_in_memory=len(self._pending))
        # A rolled-back transaction leaves its pages in the WAL file: give the space back.
        async with self.lock:
            await _checkpoint(self.db)

    async def _recovered(self) -> None:
        log.info("buffer_write_recovered", error_was=self._failing, shed_from_memory=self._shed)
        self._failing = None
        self._shed = 0
        async with self.lock:
            await _checkpoint(self.db)

    def _track_empty(self) -> None:
        if self.stats.rows == 0 and not self._pending:
            self.empty.set()
        else:
            self.empty.clear()

    async def _write(self, rows: list[Row], context: dict, acks: list[int], dead: list[tuple[int, str]]) -> None:
        """One group commit: the statements here, the COMMIT (WAL write and fsync) in aiosqlite's thread.

        The statements only touch SQLite's page cache (a transaction is at most `commit_rows` rows,
        well inside the cache), so they run on the event loop: handing each to the database thread
        costs more CPU in thread switches than the statements themselves (measured: 29 -> 14 us per
        reading at 2,000/s). Only the commit, which waits for the disk, leaves the loop. The caller
        holds `self.lock`, so nothing else uses the connection meanwhile (aiosqlite opens it with
        check_same_thread=False; `_conn` is its sqlite3 connection, stable across aiosqlite 0.x).
        """
        if not (rows or context or acks or dead):
            return
        plan = self._plan(rows, context, acks, dead)
        await self._commit(plan, _stage)
        self._acked.difference_update(acks)
        self._acked.difference_update(s for s, _ in dead)
        if plan.inserted:
            self.new_rows.set()

    def _plan(self, rows=(), context=None, acks=(), dead=()) -> _Plan:
        st = self.stats
        rows = list(rows)
        return _Plan(rows, context or {}, list(acks), list(dead), st.rows, st.bytes, st.dead_rows, st.dead_bytes, dict(st.counters), self.cfg, self._busy, _size(rows))

    async def _commit(self, plan: _Plan, stage: Callable[[sqlite3.Connection, _Plan], Any]) -> Any:
        """Run `stage` and commit it with the counters, as one transaction; the caller holds the lock."""
        db = self.db
        assert db is not None
        try:
            result = stage(db._conn, plan)
            db._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('counters', ?)", (orjson.dumps(plan.counters).decode(),))
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        st = self.stats
        before = st.dead_rows, st.dead_bytes
        st.rows, st.bytes, st.dead_rows, st.dead_bytes, st.counters = plan.n_rows, plan.n_bytes, plan.d_rows, plan.d_bytes, plan.counters
        self.captured_by.update(plan.captured_by)
        if plan.discarded_by:
            self.discarded_by.update(plan.discarded_by)
        self._follow(plan)
        c = self.cfg
        self._overflow.note(plan.discarded, st.rows < 0.9 * c.max_rows and st.bytes < 0.9 * c.max_bytes, policy=c.overflow, rows=st.rows, max_rows=c.max_rows, bytes=st.bytes, max_bytes=c.max_bytes)
        if plan.dead or (st.dead_rows, st.dead_bytes) != before:
            # Ends with the first change of the dead letters that needed no pruning.
            self._pruning.note(plan.pruned, True, rows=st.dead_rows, max_rows=c.dead_letter_max_rows, bytes=st.dead_bytes, max_bytes=c.dead_letter_max_bytes)
        return result

    def _busy(self) -> tuple[int, int]:
        """The seq range the overflow policy leaves alone: rows in flight, or acknowledged and not yet
        deleted. Every row still in the outbox inside it is one of those (fetch hands out rows in
        seq order), so a range is exact enough and lets the discard use the index."""
        if not self._inflight and not self._acked:
            return 1, 0
        both = (self._inflight, self._acked)
        return min(min(s) for s in both if s), max(max(s) for s in both if s)

    def _requeue(self, rows, context, acks, dead) -> None:
        self._pending[:0] = rows
        self._context = {**context, **self._context}
        self._acks[:0] = acks
        self._dead[:0] = dead
        self._work.set()
        if self._pending or self._context:
            self._wake.set()
        self._shed_memory()

    def _shed_memory(self) -> None:
        """The disk has refused writes for long: shed the oldest telemetry, never protected rows."""
        held = sum(len(r.payload) for r in self._pending)
        excess_rows = len(self._pending) - MAX_PENDING
        excess_bytes = held - MAX_PENDING_BYTES
        if excess_rows <= 0 and excess_bytes <= 0:
            return
        keep: list[Row] = []
        shed = 0
        for r in self._pending:
            if not r.protected and (excess_rows > 0 or excess_bytes > 0):
                excess_rows -= 1
                excess_bytes -= len(r.payload)
                shed += 1
            else:
                keep.append(r)
        self._pending = keep
        if not shed:
            return
        self.stats.counters["shed"] += shed
        if not self._shed:
            log.error("buffer_memory_shed", discarded=shed, held_in_memory=len(keep), max_rows=MAX_PENDING, max_bytes=MAX_PENDING_BYTES)
        self._shed += shed

    def _release(self, batch: int) -> None:
        self._done = max(self._done, batch)
        for t in [t for t in self._waiters if t <= batch]:
            fut = self._waiters.pop(t)
            if not fut.done():
                fut.set_result(None)

    # -- dead letters -------------------------------------------------------------------------

    async def read(self, query: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a read-only `query(conn)` against the committed file (dead-letter listings)."""
        assert self.db is not None
        async with self.lock:
            return query(self.db._conn)

    async def revise(self, stage: Callable[[sqlite3.Connection, _Plan], Any]) -> Any:
        """Run `stage(conn, plan)` as a transaction of its own (operator actions on dead letters):
        it updates the plan's sizes and counters for what it moved; returns what `stage` returns."""
        async with self._writer, self.lock:
            plan = self._plan()
            try:
                result = await self._commit(plan, stage)
            except sqlite3.Error as exc:
                raise BufferError(str(exc)) from exc
        if plan.inserted:
            self._live.clear()
            self._live_broken = True
            self.new_rows.set()
        self._track_empty()
        return result

    # -- reading ------------------------------------------------------------------------------

    def _follow(self, plan: _Plan) -> None:
        """Keep the rows just committed in memory for the publisher, so that a publisher that is
        caught up reads nothing back from disk. The copy is dropped whenever it could differ from
        the file (overflow discards) or grows past LIVE_MAX (publisher away): then it reads disk."""
        live = self._live
        if plan.discarded or self._live_broken:
            live.clear()
            self._live_broken = True
            return
        if not plan.inserted or plan.last_seq is None:
            return
        first = plan.last_seq - len(plan.inserted) + 1
        if (live and live[-1][0] != first - 1) or len(live) + len(plan.inserted) > LIVE_MAX:
            live.clear()
            self._live_broken = True
            return
        live.extend((first + i, r.topic, r.payload, r.at) for i, r in enumerate(plan.inserted))

    async def fetch(self, after: int, limit: int) -> list[tuple[int, str, bytes, float]]:
        """Committed rows (seq, topic, payload, ingest time) with seq > after, in seq order,
        skipping rows already acknowledged. The rows returned are in flight until acknowledged,
        dead-lettered or abandoned; a fetch from before the last one starts over (abandons)."""
        if after < self._ceiling:
            self._inflight.clear()
        live = self._live
        if live and live[0][0] == after + 1 and not self._live_broken:
            rows = [live.popleft() for _ in range(min(limit, len(live)))]
        else:
            # Resuming, catching up or after a reconnect: read the file, and follow from there.
            live.clear()
            self._live_broken = False
            rows = await self._fetch_disk(after, limit)
        if self._acked:
            rows = [r for r in rows if r[0] not in self._acked]
        self._inflight.update(r[0] for r in rows)
        self._ceiling = rows[-1][0] if rows else after
        return rows

    async def _fetch_disk(self, after: int, limit: int) -> list[tuple[int, str, bytes, float]]:
        db = self.db
        assert db is not None
        async with self.lock:
            return list(await db.execute_fetchall("SELECT seq, topic, payload, at FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)))

    async def oldest(self) -> float | None:
        """Ingest time of the oldest row still in the outbox."""
        assert self.db is not None
        async with self.lock, self.db.execute("SELECT at FROM outbox ORDER BY seq LIMIT 1") as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def contexts(self) -> dict[str, dict]:
        assert self.db is not None
        async with self.db.execute("SELECT station, state FROM context") as cur:
            return {s: orjson.loads(v) for s, v in await cur.fetchall()}

    def pending(self) -> int:
        """Readings queued but not (yet) captured: in memory, or in a commit that has not returned."""
        return len(self._pending) + self._writing

    def disk_free(self) -> int | None:
        """Free bytes on the file system that holds the buffer (None when it cannot be asked)."""
        try:
            return shutil.disk_usage(self.cfg.path.parent).free
        except OSError:
            return None


class Episode:
    """A condition logged once when it starts and once when it ends, with what it counted."""

    def __init__(self, started: str, ended: str):
        self.started, self.ended = started, ended
        self.since: float | None = None
        self.count = 0

    def note(self, count: int, calm: bool, **state: Any) -> None:
        if count:
            if self.since is None:
                self.since = time.time()
                log.warning(self.started, **state)
            self.count += count
        elif self.since is not None and calm:
            log.warning(self.ended, count=self.count, seconds=round(time.time() - self.since, 1))
            self.since = None
            self.count = 0


@dataclass(slots=True)
class _Plan:
    """What one transaction does, and (after it) the resulting sizes and counters."""

    rows: list[Row]
    context: dict[str, str]
    acks: list[int]
    dead: list[tuple[int, str]]
    n_rows: int
    n_bytes: int
    d_rows: int
    d_bytes: int
    counters: dict[str, int]
    cfg: BufferConfig
    busy: Callable[[], tuple[int, int]]
    rows_bytes: int  # payload bytes of `rows`
    discarded: int = 0
    pruned: int = 0
    inserted: list[Row] = field(default_factory=list)
    last_seq: int | None = None
    captured_by: Counter = field(default_factory=Counter)
    discarded_by: Counter = field(default_factory=Counter)


_payload = attrgetter("payload")
_topic = attrgetter("topic")


def _size(rows: list[Row]) -> int:
    """Payload bytes of `rows`, summed without a Python-level loop (this runs for every commit)."""
    return sum(map(len, map(_payload, rows)))


def _chunk(rows: list[Row], most: int) -> int:
    """How many of `rows` go into one transaction: at most `most` rows and CHUNK_BYTES (at least one)."""
    if _size(rows[:most]) <= CHUNK_BYTES:
        return min(len(rows), most)
    size = 0
    for i, r in enumerate(rows[:most]):
        size += len(r.payload)
        if size > CHUNK_BYTES and i:
            return i
    return min(len(rows), most)


def _retrieve(fut: asyncio.Future) -> None:
    """A flush nobody waits for any more (timed out) still must not warn that its error was lost."""
    if not fut.cancelled():
        fut.exception()


async def _checkpoint(db: aiosqlite.Connection | None) -> None:
    """Move the WAL into the file and truncate it; off the hot path (after failures, at close).
    On a full disk it may fail too: the next one tries again."""
    if db is None:
        return
    try:
        await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # the disk is full for this too; the next failure or the recovery tries again


def _stage(conn: sqlite3.Connection, p: _Plan) -> None:
    """The statements of one group commit (the caller commits or rolls back)."""
    c = p.counters
    if p.dead:
        now = time.time()
        seqs = [s for s, _ in p.dead]
        conn.executemany(
            "INSERT OR REPLACE INTO dead_letter(seq, topic, payload, protected, reason, at) "
            "SELECT seq, topic, payload, protected, ?, ? FROM outbox WHERE seq = ?",
            [(reason, now, s) for s, reason in p.dead],
        )
        n, size = _delete(conn, p, seqs)
        c["dead_lettered"] += n
        p.d_rows += n
        p.d_bytes += size
        _prune(conn, p)
    if p.acks:
        c["published"] += _delete(conn, p, p.acks)[0]
    rows = _make_room(conn, p) if p.rows else p.rows
    p.inserted = rows
    if rows:
        conn.executemany(
            "INSERT INTO outbox(topic, payload, protected, at) VALUES (?, ?, ?, ?)",
            [(r.topic, r.payload, r.protected, r.at) for r in rows],
        )
        # One writer, one transaction: the rows got consecutive seqs ending here.
        p.last_seq = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        p.n_rows += len(rows)
        p.n_bytes += p.rows_bytes if rows is p.rows else _size(rows)
    # Captured: every row that reached this commit, inserted or discarded by the policy in it (the
    # count of those is committed in `discards`).
    c["captured"] += len(p.rows)
    p.captured_by.update(map(_topic, p.rows))
    for station, state in p.context.items():
        conn.execute("INSERT OR REPLACE INTO context(station, state) VALUES (?, ?)", (station, state))
    c["discarded"] += p.discarded


def _delete(conn: sqlite3.Connection, p: _Plan, seqs: list[int]) -> tuple[int, int]:
    """Delete rows by seq (one statement for the whole list); return how many existed and their bytes."""
    gone = conn.execute(
        "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) RETURNING length(payload)",
        (orjson.dumps(seqs).decode(),),
    ).fetchall()
    size = sum(g[0] for g in gone)
    p.n_rows -= len(gone)
    p.n_bytes -= size
    return len(gone), size


def _prune(conn: sqlite3.Connection, p: _Plan) -> None:
    """Keep the dead-letter table within its limits: delete its oldest rows, counted."""
    max_rows, max_bytes = p.cfg.dead_letter_max_rows, p.cfg.dead_letter_max_bytes
    while p.d_rows > max_rows or p.d_bytes > max_bytes:
        want = max(p.d_rows - max_rows, 1)
        if p.d_bytes > max_bytes:
            want = max(want, (p.d_bytes - max_bytes) * p.d_rows // max(p.d_bytes, 1) + 1)
        gone = conn.execute(
            "DELETE FROM dead_letter WHERE seq IN (SELECT seq FROM dead_letter ORDER BY seq LIMIT ?) RETURNING length(payload)", (want,)
        ).fetchall()
        if not gone:
            break
        p.d_rows -= len(gone)
        p.d_bytes -= sum(g[0] for g in gone)
        p.pruned += len(gone)
        p.counters["dead_letter_pruned"] += len(gone)


def _make_room(conn: sqlite3.Connection, p: _Plan) -> list[Row]:
    """Apply the overflow policy so that the new rows fit; return the rows still to insert."""
    rows = p.rows
    cfg = p.cfg
    over_rows = p.n_rows + len(rows) - cfg.max_rows
    over_bytes = p.n_bytes + p.rows_bytes - cfg.max_bytes
    if over_rows <= 0 and over_bytes <= 0:
        return rows
    now = time.time()
    if cfg.overflow == "drop_oldest":
        lo, hi = p.busy()
        while over_rows > 0 or over_bytes > 0:
            # Rows to free: the row excess, or the byte excess at the average row size.
            want = max(over_rows, 0)
            if over_bytes > 0 and p.n_rows:
                want = max(want, over_bytes * p.n_rows // max(p.n_bytes, 1) + 1)
            gone = conn.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE protected = 0 AND (seq < ? OR seq > ?) "
                "ORDER BY seq LIMIT ?) RETURNING seq, length(payload), topic",
                (lo, hi, want),
            ).fetchall()
            p.discarded_by.update(g[2] for g in gone)
            if not gone:
                break
            seqs = [g[0] for g in gone]
            freed = sum(g[1] for g in gone)
            p.n_rows -= len(gone)
            p.n_bytes -= freed
            over_rows -= len(gone)
            over_bytes -= freed
            p.discarded += len(gone)
            conn.execute(
                "INSERT INTO discards(first_seq, last_seq, count, policy, at) VALUES (?, ?, ?, ?, ?)",
                (min(seqs), max(seqs), len(seqs), cfg.overflow, now),
            )
    if over_rows > 0 or over_bytes > 0:
        # drop_newest, or nothing old left to drop: the newest incoming telemetry gives way, as much
        # as needed; protected rows stay.
        drop = set()
        for i in range(len(rows) - 1, -1, -1):
            if over_rows <= 0 and over_bytes <= 0:
                break
            if not rows[i].protected:
                drop.add(i)
                over_rows -= 1
                over_bytes -= len(rows[i].payload)
        if drop:
            p.discarded += len(drop)
            p.discarded_by.update(rows[i].topic for i in drop)
            conn.execute(
                "INSERT INTO discards(first_seq, last_seq, count, policy, at) VALUES (NULL, NULL, ?, ?, ?)",
                (len(drop), cfg.overflow, now),
            )
            rows = [r for i, r in enumerate(rows) if i not in drop]
    return rows


def make_dirs(folder: Path) -> None:
    """Create the missing folders of `folder`, DIR_MODE at most (mkdir applies the umask too);
    pathlib's parents=True would give the upper ones 0777 less the umask."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass


def create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite gives -wal and -shm the mode of
    the database file), whatever the umask."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_size == 0:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def take_lock(path: Path) -> int:
    """Hold an exclusive lock for the life of the process (released by the kernel on any exit)."""
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BufferLocked(f"{path} is in use by another gateway process") from None
    if os.fstat(fd).st_size == 0:
        os.fchmod(fd, FILE_MODE)
    return fd
