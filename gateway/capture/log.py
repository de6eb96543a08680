"""The capture log: every record is a row here from the moment it is captured, and stays as the
journal after every sink has it, until retention lets it go.

Invariants. Code below must keep them; tests in tests/gateway/capture/test_log*.py show them.

1. Captured means committed. `put()` only queues a record in memory; it is captured when the group
   commit that holds it returns. Nothing is acknowledged to a device or an operator before that:
   `committed(ticket)` resolves only after the commit.
2. Group commit. Records are written in one transaction once `commit_rows` are queued, once
   none came for `commit_quiet`, or at the latest `commit_interval` after the first, so fsync is
   paid once per batch (a poll's burst, or all the polls that fell due together). Telemetry of one
   device and one context queued in one interval is one row (a chunk) holding contiguous seqs.
3. `seq` is contiguous within a commit, strictly increasing, never reused: the next seq is kept in
   `meta` and written in the same transaction as the records, and a new file starts at
   `unix_ms * 1000`, so even a deleted file does not repeat a seq a consumer has seen. A crash
   before commit loses only records that were never captured, and burns no seq.
4. Stored neutral: a row holds the records' fields (gateway.northbound.sink.Chunk), not a topic or
   a wire encoding; each sink encodes for its far end.
5. Each configured sink has a durable cursor: every record at or below it was acknowledged or
   dead-lettered (with a reason, in `dead_letter`, for that sink) by that sink. Cursors are written
   with the next commit; a cursor lost in a crash only means records sent again.
6. A row leaves the log only (a) when every configured sink's cursor is past it and the journal's
   retention lets it go (gateway.journal.retention: in steps of at most 1,000 rows and 1 MiB, in the
   database's thread, never a record whose dead letter is not yet written), or (b) by the overflow
   policy: past `max_rows`
   or `max_bytes` of undelivered records, the oldest (or newest) telemetry that no sink has in
   flight is discarded. Scans, RFID reads, alarms and context events are never discarded. Every
   discarded record is counted, its seq range recorded in `discards`, and the episode logged once
   when it starts and once when it ends. So per sink:
   captured + requeued(for it) == acknowledged + dead-lettered + discarded(unsent to it) + backlog.
7. Restart. After a crash or a power cut (synchronous=FULL, WAL) the log reopens with exactly the
   committed rows; each sink resumes after its cursor. The station context lives in the same file
   and is updated in the same transaction as the event that journals the change.
8. One writer. Only this object writes the file; a second gateway on the same file is refused by an
   exclusive lock on `<path>.lock`. The file, its -wal and -shm and the lock are created 0600.
9. Format. The file carries `PRAGMA user_version` (gateway.journal.schema.FORMAT); a file of an
   earlier release is migrated in one transaction on open (gateway.journal.migrate), without losing
   or renumbering a row; a file of a newer release is refused, never rewritten.

Disk full or I/O errors roll the batch back and keep it in memory (bounded in records and bytes;
past that telemetry is shed, counted); the error is logged once per episode and counted, and
writing is retried. A transaction holds at most `commit_rows` records and CHUNK_BYTES, so
recovering from a long episode needs little free space, and the WAL is truncated after a failure
and after the recovery. `flush()` ends within its timeout whatever the disk does: committed, or
BufferError with the records still counted by `pending()`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
import structlog

from gateway.capture.commit import Plan, stage
from gateway.capture.feed import Reader
from gateway.capture.files import create_private, make_dirs, take_lock
from gateway.config import BufferConfig, JournalConfig
from gateway.errors import BufferError
from gateway.journal import retention
from gateway.journal.aggregate import Minutes, Point
from gateway.journal.migrate import TooNew, prepare
from gateway.northbound.sink import Chunk

log = structlog.get_logger("gateway.capture.log")

COUNTERS = ("captured", "discarded", "shed", "write_errors", "requeued", "dead_letter_pruned", "dead_letter_purged", "journal_pruned")
ACK_DELAY = 0.2  # longest a cursor update waits for a commit to ride along with
MAX_PENDING = 200_000  # records held in memory while the disk refuses writes
MAX_PENDING_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024  # bytes in one transaction (about one WAL auto-checkpoint)
CHUNK_ITEMS = 1000  # records in one row at most
WAL_LIMIT = 4 * 1024 * 1024
FLUSH_TIMEOUT = 10.0


@dataclass(slots=True)
class Batch:
    """Records of one device, type and context queued for the next commit: a row once committed."""

    type: str
    station: str
    device: str
    context_id: str | None
    protected: bool
    head: bytes
    items: list[bytes]
    at: float
    size: int
    points: list[Point] | None = None  # telemetry values for the minute aggregates
    keys: list[tuple[str, str]] | None = None  # index keys (protected records: one per batch)
    interval: tuple | None = None  # a context event's row of `contexts`
    only: str | None = None  # a requeued dead letter goes to this sink alone


@dataclass
class Stats:
    rows: int = 0  # records not yet delivered by the slowest sink (the backlog)
    bytes: int = 0
    dead_rows: int = 0
    dead_bytes: int = 0
    journal_rows: int = 0  # log rows in the file, delivered or not
    journal_bytes: int = 0
    telemetry_bytes: int = 0  # bytes of unprotected rows in the file
    counters: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))


class Log:
    """Owns the SQLite file. `async with Log(cfg, sinks) as log:`; run `log.run()` as a task."""

    def __init__(self, cfg: BufferConfig, sinks: list[str], journal: JournalConfig | None = None):
        self.cfg = cfg
        self.journal = journal or JournalConfig()
        self.sink_names = list(sinks)
        self.db: aiosqlite.Connection | None = None
        self.stats = Stats()
        self.readers: dict[str, Reader] = {}
        # Per (device, type), since this process started (for /metrics; the file's counters are gateway-wide).
        self.captured_by: Counter[tuple[str, str]] = Counter()
        self.discarded_by: Counter[tuple[str, str]] = Counter()
        self.lock = asyncio.Lock()  # one transaction at a time
        self._writer = asyncio.Lock()  # one flush at a time
        self.empty = asyncio.Event()  # set while no record awaits delivery
        self._pending: list[Batch] = []
        self._joinable: dict[tuple, Batch] = {}  # telemetry batches of _pending that may take more records
        self._records = 0  # records in _pending
        self._writing = 0
        self._context: dict[str, str] = {}
        self._dead: list[tuple[str, int, int, str]] = []
        self._batch = 0
        self._done = -1
        self.commits = 0  # transactions since start (group commits, cursor updates)
        self._waiters: dict[int, asyncio.Future] = {}
        self._wake = asyncio.Event()
        self._work = asyncio.Event()
        self._full = asyncio.Event()
        self._lockfile: int | None = None
        self._overflow = Episode("buffer_overflow", "buffer_overflow_ended")
        self._pruning = Episode("dead_letter_pruned", "dead_letter_pruning_ended")
        self._failing: str | None = None
        self._shed = 0
        self._next = 0  # the next seq
        self._minutes = Minutes(0)
        self._dirty_state = False
        self._per_row = 1.0  # records per log row, as reads find them

    # -- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Log:
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
        except TooNew as exc:
            self._unlock()
            raise BufferError(f"buffer.path {path}: {exc}") from None
        except sqlite3.OperationalError as exc:
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
        db = await aiosqlite.connect(path, check_same_thread=False)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={self.cfg.synchronous.upper()}")
            await db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            done = await db._execute(prepare, db._conn, self.sink_names)
            if done:
                log.info("buffer_prepared", path=str(path), change=done)
            await db._execute(self._load, db._conn)
        except BaseException:
            await db.close()
            raise
        return db

    def _load(self, conn: sqlite3.Connection) -> None:
        """Sizes, counters, cursors and the aggregates' restart point, from the file."""
        meta = {k: orjson.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        meta.update(meta.pop("state", None) or {})  # one row per commit; the migration writes the keys apart
        st = self.stats
        c = meta.get("counters") or {}
        st.counters.update({k: v for k, v in c.items() if k != "sinks"})
        sinks = c.get("sinks") or {}
        self._next = meta.get("next_seq") or int(time.time() * 1000) * 1000 + 1
        st.journal_rows, st.journal_bytes = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM log").fetchone()
        st.telemetry_bytes = conn.execute("SELECT coalesce(sum(size), 0) FROM log WHERE protected = 0").fetchone()[0]
        st.dead_rows, st.dead_bytes = conn.execute("SELECT count(*), coalesce(sum(length(record)), 0) FROM dead_letter").fetchone()
        cursors = dict(conn.execute("SELECT sink, seq FROM cursors"))
        known = [cursors[n] for n in self.sink_names if n in cursors]
        for name in self.sink_names:
            # A sink new to this file starts where the slowest known one is: it gets the backlog,
            # not the whole journal.
            start = cursors.get(name, min(known) if known else self._next - 1)
            r = self.readers[name] = Reader(self, name, start)
            if name not in cursors:
                r.saved = None  # written with the first commit, before any record it must carry
                self._dirty_state = True
            r.backlog, r.backlog_bytes = conn.execute(
                "SELECT coalesce(sum(last - max(seq, ?) + 1), 0), coalesce(sum(size), 0) FROM log "
                "WHERE last > ? AND (only IS NULL OR only = ?)",
                (start + 1, start, name),
            ).fetchone()
            s = sinks.get(name) or {}
            r.acked, r.dead_lettered, r.dropped, r.requeued = (s.get(k, 0) for k in ("acked", "dead_lettered", "discarded", "requeued"))
            r.state = (meta.get("sink_state") or {}).get(name, {})
        self._set_backlog()
        mark = meta.get("aggregated")
        self._minutes = Minutes(self._next - 1 if mark is None else mark)
        for seq, station, device, context_id, at, head, items in conn.execute(
            "SELECT seq, station, device, context_id, at, head, items FROM log WHERE seq > ? AND type = 'telemetry' ORDER BY seq",
            (self._minutes.watermark,),
        ):
            self._minutes.fold(seq, station, device, context_id, at, _points(head, items))

    async def __aexit__(self, *exc) -> None:
        if self.db is not None:
            try:
                await self.flush(everything=True)
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
            log.error("buffer_close_timeout", seconds=FLUSH_TIMEOUT, not_captured=self.pending())

    def _unlock(self) -> None:
        if self._lockfile is not None:
            os.close(self._lockfile)
            self._lockfile = None

    # -- writing ------------------------------------------------------------------------------

    def put(self, key: tuple | None, make: Callable[[], Batch], item: bytes, point: Point | None = None, urgent: bool = False) -> int:
        """Queue one record (`item`, its line); return the ticket for `committed()`.

        Telemetry with a `key` (device and context version: what its shared head depends on) joins
        the open batch of that key, `point` being its value for the minute aggregates; otherwise
        `make()` starts a new batch (with its head) for the record. `urgent`: someone waits for this
        record (an operator for the scanner's beep): commit now instead of after commit_interval.
        """
        b = self._joinable.get(key) if key is not None else None
        if b is None:
            b = make()
            self._pending.append(b)
            if key is not None:
                self._joinable[key] = b
        b.items.append(item)
        b.size += len(item) + 1
        if point is not None and b.points is not None:
            b.points.append(point)
        # A batch is one row and commits whole: keep it within one transaction's bounds.
        if key is not None and (len(b.items) >= min(CHUNK_ITEMS, self.cfg.commit_rows) or b.size >= CHUNK_BYTES):
            del self._joinable[key]
        self._records += 1
        if not self._wake.is_set():
            self._wake.set()
            self._work.set()
        if urgent or self._records >= self.cfg.commit_rows:
            self._full.set()
        return self._batch

    def extend(self, key: tuple, make: Callable[[], Batch], items: list[bytes], points: list[Point]) -> int:
        """`put()` for the telemetry of one poll: its records join one batch in one step."""
        b = self._joinable.get(key)
        if b is None or len(b.items) + len(items) > CHUNK_ITEMS:
            b = make()
            self._pending.append(b)
            self._joinable[key] = b
        b.items.extend(items)
        b.size += sum(map(len, items)) + len(items)
        if b.points is not None:
            b.points.extend(points)
        self._records += len(items)
        if not self._wake.is_set():
            self._wake.set()
            self._work.set()
        if self._records >= self.cfg.commit_rows:
            self._full.set()
        return self._batch

    def set_context(self, station: str, state: dict) -> int:
        """Persist a station's context in the same transaction as the records queued with it."""
        self._context[station] = orjson.dumps(state).decode()
        self._wake.set()
        self._work.set()
        return self._batch

    def dead(self, sink: str, first: int, last: int, reason: str) -> None:
        """Records first..last refused for good by `sink`: into `dead_letter` with the next commit."""
        self._dead.append((sink, first, last, reason))
        self._work.set()

    def touch(self) -> None:
        """A cursor or a sink's state changed: write it with the next commit (within ACK_DELAY)."""
        self._dirty_state = True
        self._work.set()
        self._set_backlog()

    def feed(self, name: str) -> Reader:
        return self.readers[name]

    async def committed(self, ticket: int) -> None:
        """Return once the batch holding `ticket` is committed (captured)."""
        if ticket <= self._done:
            return
        fut = self._waiters.get(ticket)
        if fut is None:
            fut = self._waiters[ticket] = asyncio.get_running_loop().create_future()
        await asyncio.shield(fut)

    async def run(self) -> None:
        """The group-commit loop and the journal's pruning; runs until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._prune_loop())
            while True:
                await self._work.wait()
                self._work.clear()
                if not self._wake.is_set():  # only cursors to write: let them pile up a little
                    try:
                        async with asyncio.timeout(ACK_DELAY):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
                if self._wake.is_set() and self._records < self.cfg.commit_rows:
                    await self._linger()
                try:
                    await self.flush()
                except BufferError:
                    await asyncio.sleep(0.5)  # the disk refused; the batch is kept, try again shortly

    async def _linger(self) -> None:
        """Let a batch grow: until `commit_rows` are queued (or an urgent record), `commit_interval`
        passed, or no record came for `commit_quiet` (a poll's burst is over). A debounce timer, not
        a poll per record: put() stays free of wake-ups."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.commit_interval
        quiet = self.cfg.commit_quiet
        seen = -1
        while not self._full.is_set() and self._records != seen:
            left = deadline - loop.time()
            if left <= 0:
                return
            seen = self._records
            try:
                async with asyncio.timeout(min(quiet, left) if quiet else left):
                    await self._full.wait()
            except TimeoutError:
                pass

    async def flush(self, timeout: float = FLUSH_TIMEOUT, everything: bool = False) -> None:
        """Commit everything queued now, or raise BufferError within `timeout` seconds.

        The commit itself is not interruptible: on a stop or a timeout it goes on in the background
        and ends committed, or rolled back and requeued, so no record is ever in neither memory nor
        the file; meanwhile `pending()` counts its records as not captured. `everything`: also the
        aggregates of the minute under way (at close).
        """
        done = asyncio.ensure_future(self._flush(everything))
        done.add_done_callback(_retrieve)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(done)
        except TimeoutError:
            raise BufferError(f"the disk did not complete a commit within {timeout:g} s; {self.pending()} readings not captured") from None
        except asyncio.CancelledError:
            await asyncio.wait([done], timeout=timeout)
            raise

    async def _flush(self, everything: bool = False) -> None:
        async with self._writer:
            if self.db is None:
                raise BufferError("the buffer is closed")
            self._wake.clear()
            self._full.clear()
            batches, self._pending = self._pending, []
            self._joinable.clear()
            self._records = 0
            context, self._context = self._context, {}
            ticket = self._batch
            self._batch += 1
            self._writing = sum(len(b.items) for b in batches)
            wrote = False
            try:
                while True:
                    dead, self._dead = self._dead, []
                    n = _chunk(batches, self.cfg.commit_rows)
                    plan = Plan(batches[:n], context, dead, self, everything and n == len(batches))
                    if not (plan.batches or context or dead or self._dirty_state or plan.minutes):
                        break
                    self._dirty_state = False
                    try:
                        async with self.lock:
                            await self._commit(plan, stage)
                    except sqlite3.Error as exc:
                        self._requeue(batches, context, dead)
                        await self._failed(exc)
                        raise BufferError(str(exc)) from exc
                    wrote = True
                    del batches[:n]
                    self._writing = sum(len(b.items) for b in batches)
                    context = {}
                    if not batches:
                        break
                    if self._excess() > 0:
                        await self._prune_step()
            finally:
                self._writing = 0
            if wrote and self._failing is not None:
                await self._recovered()
        self._release(ticket)
        self._track_empty()

    async def _commit(self, plan: Plan, stage: Callable[[sqlite3.Connection, Plan], Any]) -> Any:
        """Run `stage` and commit it with the cursors and counters, as one transaction; the caller
        holds the lock. The statements touch only SQLite's page cache, so they run on the loop;
        only the COMMIT (WAL write and fsync) goes to aiosqlite's thread."""
        db = self.db
        assert db is not None
        conn = db._conn
        try:
            result = stage(conn, plan)
            # The sinks' counts as of the cursors written with them, not as of the plan.
            plan.counters["sinks"] = {n: r.counts(plan) for n, r in self.readers.items()}
            plan.cursors = [(n, r.cursor) for n, r in self.readers.items() if r.cursor != r.saved]
            if plan.cursors:
                conn.executemany("INSERT OR REPLACE INTO cursors(sink, seq) VALUES (?, ?)", plan.cursors)
            _set(conn, "state", {
                "counters": plan.counters, "next_seq": plan.next, "sink_state": {n: r.state for n, r in self.readers.items()},
                "aggregated": plan.mark if plan.mark is not None else self._minutes.watermark,
            })
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        self.commits += 1
        self._after(plan)
        return result

    def _after(self, plan: Plan) -> None:
        """What a commit changed, in memory: sizes, counters, cursors, the readers' live copies."""
        st = self.stats
        before = st.dead_rows, st.dead_bytes
        st.counters = plan.counters
        st.dead_rows, st.dead_bytes = plan.d_rows, plan.d_bytes
        st.journal_rows += len(plan.inserted) - len(plan.gone)
        st.journal_bytes += sum(c.size for c in plan.inserted) - sum(g[1] for g in plan.gone)
        st.telemetry_bytes += sum(c.size for c in plan.inserted if not c.protected) - plan.gone_telemetry
        self._next = plan.next
        for name, cursor in plan.cursors:  # as written: acks during the COMMIT wait for the next one
            self.readers[name].saved = cursor
        if any(r.cursor != r.saved for r in self.readers.values()):
            self._dirty_state = True
            self._work.set()
        for first, last, size, device, type_, only in plan.discards:
            for r in self.readers.values():
                if only is None or only == r.name:
                    r.discarded(first, last, size)
            self.discarded_by[device, type_] += last - first + 1
        if plan.inserted:
            for r in self.readers.values():
                mine = [c.chunk for c in plan.inserted if c.only is None or c.only == r.name]
                if mine:
                    r.committed(mine)
            for c in plan.inserted:
                if c.only in self.readers:
                    self.readers[c.only].requeued += len(c.chunk)
                self.captured_by[c.chunk.device, c.chunk.type] += len(c.chunk)
                if c.points:
                    self._minutes.fold(c.chunk.first, c.chunk.station, c.chunk.device, c.context_id, c.chunk.at, c.points)
        for device, type_, n in plan.shed_newest:
            self.discarded_by[device, type_] += n
            for r in self.readers.values():
                r.dropped += n
        if plan.minutes:
            self._minutes.written(*plan.minutes)
        self._set_backlog()
        c = self.cfg
        self._overflow.note(plan.discarded, st.rows < 0.9 * c.max_rows and st.bytes < 0.9 * c.max_bytes,
                            policy=c.overflow, rows=st.rows, max_rows=c.max_rows, bytes=st.bytes, max_bytes=c.max_bytes)
        if plan.dead or (st.dead_rows, st.dead_bytes) != before:
            self._pruning.note(plan.pruned, True, rows=st.dead_rows, max_rows=c.dead_letter_max_rows,
                               bytes=st.dead_bytes, max_bytes=c.dead_letter_max_bytes)

    def _set_backlog(self) -> None:
        rs = self.readers.values()
        self.stats.rows = max((r.backlog for r in rs), default=0)
        self.stats.bytes = max((r.backlog_bytes for r in rs), default=0)
        self._track_empty()

    async def _failed(self, exc: sqlite3.Error) -> None:
        self.stats.counters["write_errors"] += 1
        if self._failing is None:
            self._failing = str(exc)
            log.error("buffer_write_failed", error=str(exc), held_in_memory=self._records)
        async with self.lock:  # a rolled-back transaction leaves its pages in the WAL file
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

    def _requeue(self, batches: list[Batch], context: dict, dead: list) -> None:
        self._pending[:0] = batches
        self._records += sum(len(b.items) for b in batches)
        self._context = {**context, **self._context}
        self._dead[:0] = dead
        self._dirty_state = True
        self._work.set()
        if self._pending or self._context:
            self._wake.set()
        self._shed_memory()

    def _shed_memory(self) -> None:
        """The disk has refused writes for long: shed the oldest telemetry, never protected records."""
        excess_rows = self._records - MAX_PENDING
        excess_bytes = sum(b.size for b in self._pending) - MAX_PENDING_BYTES
        if excess_rows <= 0 and excess_bytes <= 0:
            return
        keep: list[Batch] = []
        shed = 0
        for b in self._pending:
            if not b.protected and (excess_rows > 0 or excess_bytes > 0):
                excess_rows -= len(b.items)
                excess_bytes -= b.size
                shed += len(b.items)
                self.discarded_by[b.device, b.type] += len(b.items)
            else:
                keep.append(b)
        self._pending = keep
        self._records -= shed
        self._joinable.clear()
        if not shed:
            return
        self.stats.counters["shed"] += shed
        if not self._shed:
            log.error("buffer_memory_shed", discarded=shed, held_in_memory=self._records, max_rows=MAX_PENDING, max_bytes=MAX_PENDING_BYTES)
        self._shed += shed

    def _release(self, ticket: int) -> None:
        self._done = max(self._done, ticket)
        for t in [t for t in self._waiters if t <= ticket]:
            fut = self._waiters.pop(t)
            if not fut.done():
                fut.set_result(None)

    # -- the journal's pruning ---------------------------------------------------------------

    async def _prune_loop(self) -> None:
        while True:
            more = await self.prune()
            await asyncio.sleep(0 if more else self.journal.prune_interval)

    async def prune(self) -> bool:
        """One retention step (gateway.journal.retention) as its own short transaction; return
        whether there is probably more to prune."""
        async with self._writer:
            return await self._prune_step()

    def _excess(self) -> int:
        """Bytes of delivered telemetry above the journal's budget."""
        return self.stats.telemetry_bytes - self.stats.bytes - self.journal.telemetry_bytes

    async def _prune_step(self) -> bool:
        """prune() for a caller that holds the writer lock (also between the chunks of a long flush,
        so that on a small disk delivered rows make room for the backlog)."""
        if self.db is None:
            return False
        floor = min((r.cursor for r in self.readers.values()), default=self._next - 1)
        if self._dead:  # a refused record stays until its dead letter is written
            floor = min(floor, min(first for _, first, _, _ in self._dead) - 1)
        excess = self._excess()
        cutoff = time.time() - self.journal.keep_days * 86400
        async with self.lock:
            conn = self.db._conn
            try:
                # In the database's thread: the loop goes on reading devices and sending meanwhile.
                p = await self.db._execute(retention.step, conn, floor, excess, cutoff)
                if not (p.rows or p.other):
                    await self.db.rollback()
                    return False
                self.stats.counters["journal_pruned"] += p.telemetry + p.kept_records
                await self.db.commit()
            except sqlite3.Error as exc:
                await self.db.rollback()
                log.warning("journal_prune_failed", error=str(exc))
                return False
        st = self.stats
        st.journal_rows -= len(p.rows)
        st.journal_bytes -= p.telemetry_bytes + p.kept_bytes
        st.telemetry_bytes -= p.telemetry_bytes
        return p.full

    # -- operator actions and reads ----------------------------------------------------------

    async def read(self, query: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a read-only `query(conn)` against the committed file (listings, traces)."""
        assert self.db is not None
        async with self.lock:
            return query(self.db._conn)

    async def revise(self, stage: Callable[[sqlite3.Connection, Plan], Any]) -> Any:
        """Run `stage(conn, plan)` as a transaction of its own (operator actions on dead letters)."""
        async with self._writer, self.lock:
            plan = Plan([], {}, [], self, False)
            try:
                result = await self._commit(plan, stage)
            except sqlite3.Error as exc:
                raise BufferError(str(exc)) from exc
        self._track_empty()
        return result

    async def read_after(self, sink: str, after: int, limit: int) -> list[Chunk]:
        """Committed chunks holding records after seq `after` that `sink` carries, in seq order,
        about `limit` records at most (at least one chunk)."""
        db = self.db
        assert db is not None
        rows_wanted = max(1, int(limit / self._per_row) + 1)
        async with self.lock:
            rows = db._conn.execute(
                "SELECT seq, last, type, station, device, at, head, items FROM log "
                "WHERE seq >= coalesce((SELECT max(seq) FROM log WHERE seq <= ?), 0) AND last > ? AND (only IS NULL OR only = ?) "
                "ORDER BY seq LIMIT ?",
                (after, after, sink, rows_wanted),
            ).fetchall()
        out = []
        n = 0
        for seq, last, type_, station, device, at, head, items in rows:
            out.append(Chunk(seq, last, type_, station, device, at, bytes(head), bytes(items)))
            n += last - seq + 1
            if n >= limit:
                break
        if out:  # rows of this file hold about this many records: ask for what `limit` needs next time
            self._per_row = 0.8 * self._per_row + 0.2 * (n / len(out))
        return out

    async def oldest(self) -> float | None:
        """Ingest time of the oldest record some sink has not yet acknowledged."""
        assert self.db is not None
        floor = min((r.cursor for r in self.readers.values()), default=self._next - 1)
        async with self.lock, self.db.execute("SELECT at FROM log WHERE last > ? ORDER BY seq LIMIT 1", (floor,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def contexts(self) -> dict[str, dict]:
        assert self.db is not None
        async with self.db.execute("SELECT station, state FROM context") as cur:
            return {s: orjson.loads(v) for s, v in await cur.fetchall()}

    def pending(self) -> int:
        """Records queued but not (yet) captured: in memory, or in a commit that has not returned."""
        return self._records + self._writing

    def disk_free(self) -> int | None:
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


def _chunk(batches: list[Batch], most: int) -> int:
    """How many batches go into one transaction: about `most` records and CHUNK_BYTES (at least one)."""
    n = size = 0
    for i, b in enumerate(batches):
        n += len(b.items)
        size += b.size
        if i and (n > most or size > CHUNK_BYTES):
            return i
    return len(batches)


def _points(head: bytes, items: bytes) -> list[Point]:
    """Aggregate inputs of a stored telemetry row (to refold after a restart)."""
    h = orjson.loads(head)
    out = []
    for line in items.split(b"\n"):
        r = {**h, **orjson.loads(line)}
        out.append((str(r.get("tag")), r.get("value"), r.get("unit"), r.get("quality") == "good"))
    return out


def _set(conn: sqlite3.Connection, key: str, value: Any) -> None:
    if value is not None:
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, orjson.dumps(value).decode()))


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


async def _checkpoint(db: aiosqlite.Connection | None) -> None:
    if db is None:
        return
    try:
        async with db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
            await cur.fetchall()  # its row read, or the statement stays open and blocks the next COMMIT
    except sqlite3.Error:
        pass  # the disk is full for this too; the next failure or the recovery tries again
