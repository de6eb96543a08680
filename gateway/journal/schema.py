"""The capture log's file format (SQLite, `PRAGMA user_version` = FORMAT): the log itself, the
sinks' cursors, the journal's indexes and aggregates. Written only by gateway.capture.log; read by
the trace queries (gateway.journal.trace), which rely on the column meanings below.

Times are unix seconds (REAL). A record's `seq` is unique in the file and never reused.
"""

FORMAT = 2  # 0: release 0.1.0 (outbox of topics and payloads); 1: 0.1.x with dead_letter.protected

SCHEMA = """
-- One row per chunk: records seq..last (contiguous) of one device and one type, committed together.
-- A record is {"seq": n, **head, **items-line[n - seq]} (see gateway.northbound.sink.Chunk).
CREATE TABLE IF NOT EXISTS log(
    seq INTEGER PRIMARY KEY,
    last INTEGER NOT NULL,
    type TEXT NOT NULL,          -- telemetry | scan | rfid | alarm | context | event
    station TEXT NOT NULL,
    device TEXT NOT NULL,        -- '' for the station's own records (context events)
    context_id TEXT,             -- the station context the records were stamped with; NULL: unassigned
    at REAL NOT NULL,            -- ingest time
    protected INTEGER NOT NULL,  -- scans, RFID reads, alarms, context events: never discarded by the overflow policy
    only TEXT,                   -- NULL: every sink carries it; else only this sink (a requeued dead letter)
    head BLOB NOT NULL,          -- JSON object: fields shared by the chunk's records
    items BLOB NOT NULL,         -- one JSON object per record, newline-separated, in seq order
    size INTEGER NOT NULL        -- length(head) + length(items)
);
CREATE INDEX IF NOT EXISTS log_context ON log(context_id, seq);
CREATE INDEX IF NOT EXISTS log_kept ON log(protected, seq);
-- A station's context events in seq order (operator sessions), without reading its scans.
CREATE INDEX IF NOT EXISTS log_events ON log(station, seq) WHERE type = 'context';

-- Per sink: every record with seq <= cursor was acknowledged or dead-lettered by that sink.
CREATE TABLE IF NOT EXISTS cursors(sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);

-- A record a sink refused for good, with the reason; `record` is the whole JSON object (with seq).
CREATE TABLE IF NOT EXISTS dead_letter(
    seq INTEGER NOT NULL,
    sink TEXT NOT NULL,
    type TEXT NOT NULL,
    protected INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY(seq, sink)
);

-- Records the overflow policy discarded (never protected ones): seq range (NULL when they were
-- discarded before getting a seq), count, policy.
CREATE TABLE IF NOT EXISTS discards(
    id INTEGER PRIMARY KEY,
    first_seq INTEGER,
    last_seq INTEGER,
    count INTEGER NOT NULL,
    policy TEXT NOT NULL,
    at REAL NOT NULL
);

-- Lookup keys of protected records (scans, RFID reads, alarms, context events), kept as long as
-- their records: key is one of work_order, lot, operation, context_id, operator, gtin, batch,
-- serial, epc, alarm; value as in the record.
CREATE TABLE IF NOT EXISTS keys(
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    station TEXT NOT NULL,
    PRIMARY KEY(key, value, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_seq ON keys(seq);

-- Station contexts as intervals, from the context events (kept as long as those).
CREATE TABLE IF NOT EXISTS contexts(
    context_id TEXT PRIMARY KEY,
    station TEXT NOT NULL,
    work_order TEXT,
    operation TEXT,
    lot TEXT,
    started_at REAL,
    ended_at REAL,               -- NULL while active
    first_seq INTEGER NOT NULL,  -- the context event that started it
    last_seq INTEGER NOT NULL    -- the latest context event of it
);
CREATE INDEX IF NOT EXISTS contexts_lot ON contexts(lot);
CREATE INDEX IF NOT EXISTS contexts_order ON contexts(work_order);
CREATE INDEX IF NOT EXISTS contexts_time ON contexts(station, started_at);

-- Per-minute telemetry aggregates per tag and context (ingest minute = floor(at / 60)). `count`
-- counts every record, min/max/sum only numeric values (`numeric` of them); first/last seq bound them.
CREATE TABLE IF NOT EXISTS minutes(
    station TEXT NOT NULL,
    device TEXT NOT NULL,
    tag TEXT NOT NULL,
    context_id TEXT NOT NULL,    -- '' when unassigned
    minute INTEGER NOT NULL,
    count INTEGER NOT NULL,
    numeric INTEGER NOT NULL,
    min REAL,
    max REAL,
    sum REAL,
    bad INTEGER NOT NULL,        -- records of quality other than good
    unit TEXT,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY(context_id, device, tag, minute)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS minutes_time ON minutes(station, minute);

CREATE TABLE IF NOT EXISTS context(station TEXT PRIMARY KEY, state TEXT NOT NULL);  -- current context per station
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);      -- counters, next_seq, sink state
"""
