"""The durable outbox: every reading is a row here until the broker has acknowledged it.

Invariants (design.md §4). Code below must keep them; tests in tests/gateway/test_outbox.py show them.

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
5. Overflow. Past `max_rows` or `max_bytes` the policy discards the oldest (or the newest) rows that are
   not protected. Protected rows (scans, RFID reads, alarms, context events) are never discarded.
   Every discarded row is counted, its seq range recorded in `discards`, and the episode is logged
   once when it starts and once when it ends.
6. Restart. After a crash or a power cut (synchronous=FULL, WAL) the outbox reopens with exactly the
   committed rows; the publisher starts from the lowest seq, so unacknowledged rows are sent again.
   The station context lives in the same file and is updated in the same transaction as the event
   that journals the change.
7. One writer. Only this object writes the file; a second gateway on the same file is refused by an
   exclusive lock on `<path>.lock`.

Disk full or I/O errors roll the batch back and keep it in memory (bounded); the error is logged
once per episode and counted, and writing is retried.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite
import orjson
import structlog

from gateway.config import BufferConfig
from gateway.errors import BufferError

log = structlog.get_logger("gateway.outbox")

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
    at REAL NOT NULL
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
COUNTERS = ("captured", "published", "dead_lettered", "discarded", "write_errors")
ACK_DELAY = 0.2  # longest a delete of acknowledged rows waits for a commit to ride along with
MAX_PENDING = 200_000  # rows held in memory while the disk refuses writes
LIVE_MAX = 5_000  # committed rows kept in memory for a caught-up publisher (a few commits)


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
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))


class Outbox:
    """Owns the SQLite file. Use as `async with Outbox(cfg) as box:`; run `box.run()` as a task."""

    def __init__(self, cfg: BufferConfig):
        self.cfg = cfg
        self.db: aiosqlite.Connection | None = None
        self.stats = Stats()
        self.lock = asyncio.Lock()  # a fetch never sees a half-written transaction
        self.new_rows = asyncio.Event()  # set after a commit that inserted rows
        self.empty = asyncio.Event()  # set while no row awaits delivery
        self._pending: list[Row] = []
        self._context: dict[str, str] = {}
        self._acks: list[int] = []
        self._acked: set[int] = set()  # acknowledged, delete not yet committed: never re-sent
        self._dead: list[tuple[int, str]] = []
        self._batch = 0  # number of the batch `put()` currently fills
        self._done = -1  # highest committed batch
        self._waiters: dict[int, asyncio.Future] = {}
        self._wake = asyncio.Event()  # new rows or context: commit within commit_interval
        self._work = asyncio.Event()  # anything to commit, deletes included
        self._full = asyncio.Event()
        self._lockfile: int | None = None
        self._overflow_since: float | None = None
        self._overflow_count = 0
        self._failing: str | None = None
        self._live: deque[tuple[int, str, bytes, float]] = deque()
        self._live_broken = False

    # -- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Outbox:
        path = self.cfg.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lockfile = take_lock(path)
        except OSError as exc:
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
            self.db = await self._open(path)
        self._track_empty()
        return self

    async def _open(self, path: Path) -> aiosqlite.Connection:
        # check_same_thread=False: statements run on the loop, the commit in aiosqlite's thread (see _write).
        db = await aiosqlite.connect(path, check_same_thread=False)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={self.cfg.synchronous.upper()}")
            await db.executescript(SCHEMA)
            async with db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'") as cur:
                if await cur.fetchone() is None:
                    await db.execute(
                        "INSERT INTO sqlite_sequence(name, seq) VALUES('outbox', ?)", (int(time.time() * 1000) * 1000,)
                    )
            async with db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox") as cur:
                self.stats.rows, self.stats.bytes = await cur.fetchone()
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
                await self.db.close()
                self.db = None
        self._unlock()

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
        self._work.set()

    def dead(self, seqs: Iterable[int], reason: str) -> None:
        """Move rows to the dead-letter table for good, with the reason."""
        for s in seqs:
            self._dead.append((s, reason))
            self._acked.add(s)
        self._work.set()

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

    async def flush(self) -> None:
        """Commit everything queued now.

        Not interruptible: a stop that arrives during a commit waits for it to end (committed, or
        rolled back and requeued), so no row is ever in neither memory nor the file.
        """
        done = asyncio.ensure_future(self._flush())
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            if not done.done():
                await done
            raise

    async def _flush(self) -> None:
        self._wake.clear()
        self._full.clear()
        rows, self._pending = self._pending, []
        context, self._context = self._context, {}
        acks, self._acks = self._acks, []
        dead, self._dead = self._dead, []
        batch = self._batch
        self._batch += 1
        if not (rows or context or acks or dead):
            self._release(batch)
            return
        try:
            async with self.lock:
                await self._write(rows, context, acks, dead)
        except sqlite3.Error as exc:
            self._requeue(rows, context, acks, dead)
            self.stats.counters["write_errors"] += 1
            if self._failing is None:
                self._failing = str(exc)
                log.error("buffer_write_failed", error=str(exc), held_in_memory=len(self._pending))
            raise BufferError(str(exc)) from exc
        if self._failing is not None:
            log.info("buffer_write_recovered", error_was=self._failing)
            self._failing = None
        self._acked.difference_update(acks)
        self._acked.difference_update(s for s, _ in dead)
        self._release(batch)
        if rows:
            self.new_rows.set()
        self._track_empty()

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
        db = self.db
        assert db is not None
        st = self.stats
        plan = _Plan(rows, context, acks, dead, st.rows, st.bytes, dict(st.counters), self.cfg.max_rows, self.cfg.max_bytes, self.cfg.overflow)
        try:
            _stage(db._conn, plan)
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        st.rows, st.bytes, st.counters = plan.n_rows, plan.n_bytes, plan.counters
        self._follow(plan)
        if plan.discarded:
            if self._overflow_since is None:
                self._overflow_since = time.time()
                log.warning("buffer_overflow", policy=self.cfg.overflow, rows=st.rows, max_rows=self.cfg.max_rows, bytes=st.bytes, max_bytes=self.cfg.max_bytes)
            self._overflow_count += plan.discarded
        elif self._overflow_since is not None and st.rows < 0.9 * self.cfg.max_rows and st.bytes < 0.9 * self.cfg.max_bytes:
            log.warning("buffer_overflow_ended", discarded=self._overflow_count, seconds=round(time.time() - self._overflow_since, 1))
            self._overflow_since = None
            self._overflow_count = 0

    def _requeue(self, rows, context, acks, dead) -> None:
        self._pending[:0] = rows
        self._context = {**context, **self._context}
        self._acks[:0] = acks
        self._dead[:0] = dead
        self._work.set()
        if self._pending or self._context:
            self._wake.set()
        if len(self._pending) > MAX_PENDING:
            # The disk has refused writes for a long time: shed telemetry, never protected rows.
            keep = [r for r in self._pending if r.protected]
            excess = len(self._pending) - MAX_PENDING
            tele = [r for r in self._pending if not r.protected]
            shed = min(excess, len(tele))
            tele = tele[shed:]
            self._pending = sorted(keep + tele, key=lambda r: r.at)
            self.stats.counters["discarded"] += shed
            log.error("buffer_memory_shed", discarded=shed, held_in_memory=len(self._pending))

    def _release(self, batch: int) -> None:
        self._done = batch
        for t in [t for t in self._waiters if t <= batch]:
            fut = self._waiters.pop(t)
            if not fut.done():
                fut.set_result(None)

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
        if not plan.inserted:
            return
        first = plan.last_seq - len(plan.inserted) + 1
        if (live and live[-1][0] != first - 1) or len(live) + len(plan.inserted) > LIVE_MAX:
            live.clear()
            self._live_broken = True
            return
        live.extend((first + i, r.topic, r.payload, r.at) for i, r in enumerate(plan.inserted))

    async def fetch(self, after: int, limit: int) -> list[tuple[int, str, bytes, float]]:
        """Committed rows (seq, topic, payload, ingest time) with seq > after, in seq order,
        skipping rows already acknowledged."""
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
        return len(self._pending)


@dataclass(slots=True)
class _Plan:
    """What one group commit does, and (after it) the resulting sizes and counters."""

    rows: list[Row]
    context: dict[str, str]
    acks: list[int]
    dead: list[tuple[int, str]]
    n_rows: int
    n_bytes: int
    counters: dict[str, int]
    max_rows: int
    max_bytes: int
    overflow: str
    discarded: int = 0
    inserted: list[Row] = field(default_factory=list)
    last_seq: int = 0


def _stage(conn: sqlite3.Connection, p: _Plan) -> None:
    """The statements of one group commit (the caller commits or rolls back)."""
    c = p.counters
    if p.dead:
        now = time.time()
        conn.executemany(
            "INSERT OR REPLACE INTO dead_letter(seq, topic, payload, reason, at) "
            "SELECT seq, topic, payload, ?, ? FROM outbox WHERE seq = ?",
            [(reason, now, s) for s, reason in p.dead],
        )
        c["dead_lettered"] += _delete(conn, p, [s for s, _ in p.dead])
    if p.acks:
        c["published"] += _delete(conn, p, p.acks)
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
        p.n_bytes += sum(len(r.payload) for r in rows)
        c["captured"] += len(rows)
    for station, state in p.context.items():
        conn.execute("INSERT OR REPLACE INTO context(station, state) VALUES (?, ?)", (station, state))
    c["discarded"] += p.discarded
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('counters', ?)", (orjson.dumps(c).decode(),))


def _delete(conn: sqlite3.Connection, p: _Plan, seqs: list[int]) -> int:
    """Delete rows by seq (one statement for the whole list); return how many existed."""
    gone = conn.execute(
        "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?)) RETURNING length(payload)",
        (orjson.dumps(seqs).decode(),),
    ).fetchall()
    p.n_rows -= len(gone)
    p.n_bytes -= sum(g[0] for g in gone)
    return len(gone)


def _make_room(conn: sqlite3.Connection, p: _Plan) -> list[Row]:
    """Apply the overflow policy so that the new rows fit; return the rows still to insert."""
    rows = p.rows
    over_rows = p.n_rows + len(rows) - p.max_rows
    over_bytes = p.n_bytes + sum(len(r.payload) for r in rows) - p.max_bytes
    if over_rows <= 0 and over_bytes <= 0:
        return rows
    now = time.time()
    if p.overflow == "drop_oldest":
        while over_rows > 0 or over_bytes > 0:
            # Rows to free: the row excess, or the byte excess at the average row size.
            want = max(over_rows, 0)
            if over_bytes > 0 and p.n_rows:
                want = max(want, over_bytes * p.n_rows // max(p.n_bytes, 1) + 1)
            gone = conn.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE protected = 0 ORDER BY seq LIMIT ?) "
                "RETURNING seq, length(payload)",
                (want,),
            ).fetchall()
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
                (min(seqs), max(seqs), len(seqs), p.overflow, now),
            )
    if over_rows > 0 or over_bytes > 0:
        # drop_newest, or nothing old left to drop: incoming telemetry gives way; protected rows stay.
        keep = [r for r in rows if r.protected]
        n = len(rows) - len(keep)
        if n:
            p.discarded += n
            conn.execute(
                "INSERT INTO discards(first_seq, last_seq, count, policy, at) VALUES (NULL, NULL, ?, ?, ?)",
                (n, p.overflow, now),
            )
        rows = keep
    return rows


def take_lock(path: Path) -> int:
    """Hold an exclusive lock for the life of the process (released by the kernel on any exit)."""
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BufferError(f"{path} is in use by another gateway process") from None
    return fd
