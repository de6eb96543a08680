"""Trace-query benchmark: a month-long journal, a gateway capturing onto it, queries through the CLI path.

    python bench/trace.py                         # 3 stations x 30 days, 2,000 readings/s captured meanwhile
    python bench/trace.py --days 3 --queries 20   # a quick run
    python bench/trace.py --keep DIR              # build into DIR (kept); reused when it holds a journal

1. Build: 3 stations x `--days` days, 50 lots a day per station (one context each), 200 material scans
   per lot (one chunk each, with their keys), 200 tags per station with minute aggregates for every
   minute, `--readings` raw telemetry readings in chunks of one device (one a minute per device and
   station), alarms raised and cleared on one tag in one context of five, a discard a day, dead letters,
   and a sink cursor short of the end. Rows go in with executemany in one transaction per day; indexes
   are built at the end. Minute aggregates are synthetic (they do not sum the raw readings).
2. Capture: the real gateway process (`python -m gateway run`) on that same file, reading a Modbus
   simulator (own process) at `--rate` readings/s and publishing to a private mosquitto.
3. Measure: `--queries` queries per kind (lot, order, material batch, operator over one day), random
   keys, each the way `shopfloor-gateway trace … --json` runs it minus interpreter start: the request on
   the control socket, the daemon's worker querying its read-only connection, the answer rendered;
   `lot table` as `trace lot LOT` on a terminal; `lot --series` and `order --series` as `--json --series`
   (every tag's minutes too: thousands of points). Printed: p50/p95/max per kind, answer sizes, and the
   capture rate meanwhile (from `status`).

`--prune-interval` sets the gateway's journal.prune_interval, to compare the queries with and without
retention steps running.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

from harness import WARMUP, simulator, stop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.journal.schema import FORMAT, SCHEMA  # noqa: E402
from gateway.ops import cli, control  # noqa: E402
from gateway.ops import trace as ops  # noqa: E402
from tests.conftest import Broker  # noqa: E402

STATIONS = ("st10", "st20", "st30")
LOTS_A_DAY = 50
SCANS_A_LOT = 200
TAGS = 200  # per station: PLC tags; the last ENV_TAGS of them come from the env sensor
ENV_TAGS = 10
LIMIT = 80.0  # tag000's high limit
BATCHES = 2000
GTINS = [f"0950600013{i:04d}" for i in range(50)]


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class Build:
    """The journal's rows for `days` days ending now, appended in seq (= time) order."""

    def __init__(self, conn: sqlite3.Connection, days: int, readings: int, seed: int = 7):
        self.conn, self.days = conn, days
        self.rnd = random.Random(seed)
        self.seq = int(time.time() - days * 86400) * 1000
        self.start = math.floor((time.time() - days * 86400) / 86400) * 86400
        self.per_minute = max(2, round(readings / (days * 1440 * len(STATIONS))))  # readings a minute per station
        self.ops = {s: [f"{i:010d}" for i in range(1 + j * 100, 21 + j * 100)] for j, s in enumerate(STATIONS)}
        self.lots: list[str] = []
        self.orders: list[str] = []
        self.batches: list[str] = []
        self.operators: list[str] = []
        self.readings = 0
        self.log: list[tuple] = []
        self.keys: list[tuple] = []
        self.own: list[tuple] = []  # (station, minute, context_id, hot) of the day
        self.contexts: list[tuple] = []
        self.dead: list[tuple] = []
        self.spans: list[tuple] = []

    def run(self) -> None:
        for day in range(self.days):
            self.day(self.start + day * 86400)
            self.flush()
        last = self.seq - 1
        c = self.conn
        c.execute("BEGIN")
        c.execute("INSERT INTO cursors VALUES('mqtt', ?)", (last - 20_000,))
        c.execute("INSERT INTO meta VALUES('next_seq', ?)", (str(self.seq),))
        c.execute("COMMIT")

    def flush(self) -> None:
        c = self.conn
        self.keys.sort()
        c.execute("BEGIN")
        c.executemany("INSERT INTO log VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", self.log)
        c.executemany("INSERT OR IGNORE INTO keys VALUES(?,?,?,?,?)", self.keys)
        c.executemany("INSERT INTO own VALUES(?,?,?,?)", self.own)
        c.execute(MINUTES, (self.seq, self.seq))
        c.execute("DELETE FROM own")
        c.executemany("INSERT INTO contexts VALUES(?,?,?,?,?,?,?,?,?)", self.contexts)
        c.executemany("INSERT INTO dead_letter VALUES(?,?,?,?,?,?,?)", self.dead)
        c.execute("COMMIT")
        for rows in (self.log, self.keys, self.own, self.contexts, self.dead):
            rows.clear()

    def day(self, t0: float) -> None:
        events: list[tuple[float, int, str, tuple]] = []  # (at, order, station, what)
        span = 86400 / LOTS_A_DAY
        for s in STATIONS:
            for k in range(LOTS_A_DAY):
                start = t0 + k * span + self.rnd.uniform(0, 30)
                end = t0 + (k + 1) * span - self.rnd.uniform(10, 60)
                events.append((start, 0, s, ("start", k, end)))
            for m in range(1440):
                events.append((t0 + m * 60 + 1, 2, s, ("tele", m)))
        events.append((t0 + 43200 + 2, 2, STATIONS[0], ("discard",)))  # the overflow policy at noon, inside some lots
        queue = sorted(events, key=lambda e: (e[0], e[1]))
        self.ctx = {s: None for s in STATIONS}
        # a context's scans, alarms and end are queued when its start comes up
        i = 0
        while i < len(queue):
            at, _, s, what = queue[i]
            i += 1
            if what[0] == "start":
                extra = self.start_context(s, at, what[2])
                for e in extra:
                    self._insert(queue, i, e)
            elif what[0] == "tele":
                self.telemetry(s, at, what[1])
            elif what[0] == "scan":
                self.scan(s, at, what[1])
            elif what[0] == "alarm":
                self.alarm(s, at, *what[1:])
            elif what[0] == "end":
                self.end_context(s, at)
            elif what[0] == "discard":
                self.discard(at)
        self.aggregate(t0)

    @staticmethod
    def _insert(queue: list, start: int, e: tuple) -> None:
        lo, hi = start, len(queue)
        key = (e[0], e[1])
        while lo < hi:
            mid = (lo + hi) // 2
            if (queue[mid][0], queue[mid][1]) <= key:
                lo = mid + 1
            else:
                hi = mid
        queue.insert(lo, e)

    # -- records ----------------------------------------------------------------------------

    def chunk(self, type_: str, station: str, device: str, at: float, head: dict, items: list[bytes], protected: bool) -> int:
        first = self.seq
        self.seq += len(items)
        h = orjson.dumps(head)
        body = b"\n".join(items)
        c = self.ctx[station]
        self.log.append((first, self.seq - 1, type_, station, device, c["context_id"] if c else None, at, int(protected), None, h, body, len(h) + len(body)))
        return first

    def head(self, type_: str, station: str, device: str, kind: str, at: float) -> dict:
        c = self.ctx[station]
        return {"gateway_id": "gw-bench", "schema": 1, "type": type_, "ingested_at": iso(at), "site": "plant1", "area": "assembly",
                "line": "line1", "station": station, "device": device, "device_kind": kind, "context": "active" if c else "unassigned",
                "context_id": c and c["context_id"], "context_version": 1, "work_order": c and c["work_order"],
                "operation": c and c["operation"], "lot": c and c["lot"], "operators": c["operators"] if c else []}

    def keyed(self, seq: int, at: float, station: str, pairs: list[tuple[str, str]]) -> None:
        self.keys.extend((k, v, seq, at, station) for k, v in pairs)

    def context_keys(self, station: str) -> list[tuple[str, str]]:
        c = self.ctx[station]
        if c is None:
            return []
        return [("context_id", c["context_id"]), ("work_order", c["work_order"]), ("lot", c["lot"]), ("operation", c["operation"])] + [
            ("operator", o) for o in c["operators"]]

    def event(self, station: str, at: float, event: str) -> int:
        c = self.ctx[station]
        rec = {**self.head("context", station, "", "", at), "ts": iso(at), "event": event, "source": "mes", "actor": "mes:bench",
               "reason": None, "state": "idle" if event == "ended" else "active",
               "started_at": iso(c["started_at"]), "ended_at": iso(at) if event == "ended" else None}
        seq = self.chunk("context", station, "", at, {}, [orjson.dumps(rec)], True)
        self.keyed(seq, at, station, self.context_keys(station))
        c["last_seq"] = seq
        return seq

    def start_context(self, station: str, at: float, end: float) -> list[tuple]:
        n = len(self.lots)
        wo, lot = f"WO-{station}-{n // 5:06d}", f"LOT-{station}-{n:06d}"  # an order runs five lots
        shift = int((at % 86400) // 28800)
        pool = self.ops[station]
        operators = [pool[(shift * 2) % len(pool)], pool[(shift * 2 + 1) % len(pool)]]
        # 16 hex digits like the gateway's, rising with time here so that rows go in at the end of the keys
        cid = f"{int(at * 1000):011x}{self.rnd.getrandbits(20):05x}"
        self.ctx[station] = {"context_id": cid, "work_order": wo, "operation": "10",
                             "lot": lot, "operators": operators, "started_at": at}
        self.orders.append(wo)
        self.lots.append(lot)
        self.operators += operators
        c = self.ctx[station]
        c["first_seq"] = self.event(station, at, "started")
        out = []
        for i in range(SCANS_A_LOT):
            out.append((at + 5 + i * (end - at - 10) / SCANS_A_LOT, 1, station, ("scan", i)))
        if n % 5 == 0:
            out.append((at + 600, 1, station, ("alarm", "raised", 85.0)))
            out.append((at + 840, 1, station, ("alarm", "cleared", 70.0)))
            c["hot"] = (int((at + 600) // 60), int((at + 840) // 60))
        out.append((end, 3, station, ("end",)))
        return out

    def end_context(self, station: str, at: float) -> None:
        c = self.ctx[station]
        self.event(station, at, "ended")
        self.contexts.append((c["context_id"], station, c["work_order"], c["operation"], c["lot"], c["started_at"], at, c["first_seq"], c["last_seq"]))
        self.spans.append((station, int(c["started_at"] // 60), int(at // 60), c["context_id"], c.get("hot")))
        self.ctx[station] = None

    def scan(self, station: str, at: float, i: int) -> None:
        batch = f"B{self.rnd.randrange(BATCHES):05d}"
        gtin = GTINS[self.rnd.randrange(len(GTINS))]
        serial = f"S{self.seq}"
        refused = self.rnd.random() < 0.03
        item = {"ts": iso(at), "tag": "scan", "value": f"]d201{gtin}10{batch}21{serial}", "unit": None, "quality": "good", "reason": None,
                "kind": "gs1", "symbology": "DataMatrix", "gtin": gtin, "batch_lot": batch, "serial": serial, "expiry": "2027-12-31",
                "status": "rejected" if refused else "accepted", "reason_code": "not_in_bom" if refused else "ok",
                "message": "not in the bill of materials" if refused else "material accepted"}
        seq = self.chunk("scan", station, f"scanner-{station}", at, self.head("scan", station, f"scanner-{station}", "scanner_serial", at), [orjson.dumps(item)], True)
        self.keyed(seq, at, station, self.context_keys(station) + [("gtin", gtin), ("batch", batch), ("serial", serial)])
        self.batches.append(batch)
        if seq % 5000 < 1:
            self.dead.append((seq, "mqtt", "scan", 1, "payload too large for the broker", at, orjson.dumps({"seq": seq, **item})))

    def alarm(self, station: str, at: float, state: str, value: float) -> None:
        item = {"ts": iso(at), "tag": "tag000", "value": value, "unit": "degC", "quality": "good", "reason": f"tag000 {value} high limit {LIMIT}",
                "alarm": "high", "state": state, "limit": LIMIT, "severity": "warning"}
        seq = self.chunk("alarm", station, f"plc-{station}", at, self.head("alarm", station, f"plc-{station}", "modbus", at), [orjson.dumps(item)], True)
        self.keyed(seq, at, station, self.context_keys(station) + [("alarm", "high")])

    def telemetry(self, station: str, at: float, minute: int) -> None:
        n = self.per_minute
        for device, kind, tags in ((f"plc-{station}", "modbus", TAGS - ENV_TAGS), (f"env-{station}", "env_sensor", ENV_TAGS)):
            head = {**self.head("telemetry", station, device, kind, at), "ts": iso(at), "quality": "good", "unit": "degC", "reason": None}
            k = max(1, n // 20) if kind == "env_sensor" else n - max(1, n // 20)
            base = (minute * k) % tags
            items = [b'{"tag":"tag%03d","value":%.2f}' % ((base + j) % tags + (TAGS - ENV_TAGS if kind == "env_sensor" else 0), 60 + (j % 17)) for j in range(k)]
            self.chunk("telemetry", station, device, at, head, items, False)
            self.readings += k

    def discard(self, at: float) -> None:
        first = self.seq
        self.seq += 500
        self.conn.execute("INSERT INTO discards(first_seq, last_seq, count, policy, at) VALUES(?,?,?,?,?)", (first, self.seq - 1, 500, "drop_oldest", at))

    def aggregate(self, t0: float) -> None:
        """Which context owns each minute of the day per station ('' unassigned): the minute rows
        themselves are made by SQLite (MINUTES), every tag for every minute."""
        m0 = int(t0 // 60)
        spans = self.spans
        self.spans = []
        for station in STATIONS:
            owner = [("", 0)] * 1440
            for s, a, b, cid, hot in spans:
                if s == station:
                    for m in range(max(a, m0), min(b, m0 + 1439) + 1):
                        owner[m - m0] = (cid, int(bool(hot) and hot[0] <= m < hot[1]))
            self.own.extend((station, m0 + i, cid, hot) for i, (cid, hot) in enumerate(owner))


# tag000 is over its limit in the minutes of a hot spell; other values wander below it
MINUTES = f"""
INSERT INTO minutes
SELECT station, CASE WHEN i >= {TAGS - ENV_TAGS} THEN 'env-' ELSE 'plc-' END || station, printf('tag%03d', i), cid, minute,
       60, 60, h - 4.0, h, (h - 2.0) * 60, 0, 'degC', ?, ?
FROM (SELECT o.*, t.i, CASE WHEN t.i = 0 AND o.hot THEN 85.0 ELSE 62.0 + (o.minute + t.i) % 10 END AS h FROM own o, tags t)
ORDER BY 4, 2, 3, 5  -- the primary key's order: the rows go in at the end of the tree
"""


def create(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-2000000")
    tables = [s for s in SCHEMA.split(";") if s.strip() and "CREATE INDEX" not in s]
    conn.executescript(";".join(tables) + ";")
    conn.execute(f"PRAGMA user_version={FORMAT}")
    conn.execute("CREATE TEMP TABLE own(station TEXT, minute INTEGER, cid TEXT, hot INTEGER)")
    conn.execute("CREATE TEMP TABLE tags(i INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO tags VALUES(?)", [(i,) for i in range(TAGS)])
    return conn


def indexes(conn: sqlite3.Connection) -> None:
    for stmt in SCHEMA.split(";"):
        lines = [ln for ln in stmt.strip().splitlines() if not ln.lstrip().startswith("--")]
        text = "\n".join(lines).strip()
        if text.startswith("CREATE INDEX"):
            conn.execute(text)


def build(path: Path, days: int, readings: int) -> Build:
    t = time.monotonic()
    conn = create(path)
    b = Build(conn, days, readings)
    b.run()
    t_rows = time.monotonic() - t
    indexes(conn)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("ANALYZE")
    conn.close()
    size = path.stat().st_size
    print(f"build: {len(STATIONS)} stations x {days} days, {len(b.lots)} lots, {len(b.batches):,} scans, {b.readings:,} raw readings, "
          f"{len(STATIONS) * TAGS} tags x {days * 1440:,} minutes")
    print(f"  rows {t_rows:6.1f} s, indexes {time.monotonic() - t - t_rows:6.1f} s, total {time.monotonic() - t:6.1f} s; file {size / 2**30:.2f} GiB")
    return b


def keys_of(path: Path) -> dict[str, list]:
    """Query keys drawn from the journal itself (a reused file keeps its own)."""
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    lots = [r[0] for r in c.execute("SELECT lot FROM contexts")]
    orders = [r[0] for r in c.execute("SELECT work_order FROM contexts")]
    batches = [r[0] for r in c.execute("SELECT DISTINCT value FROM keys WHERE key = 'batch' LIMIT 500")]
    ops_ = [r[0] for r in c.execute("SELECT DISTINCT value FROM keys WHERE key = 'operator' LIMIT 100")]
    lo, hi = c.execute("SELECT min(started_at), max(started_at) FROM contexts").fetchone()
    c.close()
    return {"lots": lots, "orders": orders, "batches": batches, "operators": ops_, "range": (lo, hi)}


async def measure(cfg, keys: dict[str, list], n: int, seed: int = 11) -> dict[str, list[tuple[float, int]]]:
    rnd = random.Random(seed)
    out: dict[str, list[tuple[float, int]]] = {"lot": [], "order": [], "material": [], "operator": [], "lot table": [],
                                               "lot --series": [], "order --series": []}
    lo, hi = keys["range"]
    for _ in range(n):
        for kind in out:
            if kind in ("lot", "lot table"):  # `trace lot LOT --json`, and on a terminal (rendered as a table)
                req = {"kind": "lot", "key": rnd.choice(keys["lots"]), "opts": {"series": False}}
            elif kind == "order":
                req = {"kind": "order", "key": rnd.choice(keys["orders"]), "opts": {"series": False}}
            elif kind.endswith("--series"):  # every tag's minutes too: thousands of points
                name = kind.split()[0]
                req = {"kind": name, "key": rnd.choice(keys[name + "s"]), "opts": {}}
            elif kind == "material":
                req = {"kind": "material", "key": rnd.choice(keys["batches"]), "opts": {}}
            else:
                since = rnd.uniform(lo, hi - 86400)
                req = {"kind": "operator", "key": rnd.choice(keys["operators"]), "opts": {"since": since, "until": since + 86400}}
            t = time.perf_counter()
            rsp = await cli.ask(cfg, {"cmd": "trace", **req}, 30.0, limit=ops.REPLY_LIMIT)
            if not rsp or not rsp.get("ok"):
                raise RuntimeError(f"trace {req}: {rsp}")
            text = "" if not rsp["trace"] else ops.render(rsp["trace"]) if kind == "lot table" else ops.as_json(rsp["trace"])
            out[kind].append((time.perf_counter() - t, len(text)))
    return out


def report(title: str, res: dict[str, list[tuple[float, int]]]) -> None:
    print(title)
    for kind, xs in res.items():
        ts = sorted(x[0] * 1000 for x in xs)
        q = lambda p: ts[min(len(ts) - 1, int(p * len(ts)))]  # noqa: E731
        size = sorted(x[1] for x in xs)[len(xs) // 2]
        print(f"  {kind:<14} n={len(ts):4d}  p50 {q(0.5):7.1f} ms  p95 {q(0.95):7.1f} ms  max {ts[-1]:7.1f} ms   answer ~{size / 1024:,.0f} KiB")


async def run(path: Path, args) -> None:
    keys = keys_of(path)
    sim, line = simulator(["modbus", "--port", "0", "--period", "0.1"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-trace-"))
    broker = Broker(tmp / "broker")
    broker.start()
    devices = args.rate // 1000
    port = int(line.rsplit(":", 1)[1].split(",")[0])
    cfg_doc = {
        "gateway": {"id": "gw-bench", "site": "plant1", "area": "assembly", "line": "line1", "stations": list(STATIONS)},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "buffer": {"path": str(path)},
        # keep the month: retention must not prune during the measurement
        "journal": {"telemetry_bytes": 64 * 2**30, **({"prune_interval": args.prune_interval} if args.prune_interval else {})},
        "control": {"socket": str(tmp / "control.sock")},
        "log": {"level": "info", "format": "json"},
        "devices": [{"kind": "modbus", "name": f"plc{i}", "station": STATIONS[i % 3], "host": "127.0.0.1", "port": port, "unit": 1,
                     "polls": [{"interval": 0.1, "tags": [{"name": f"r{a}", "address": a, "type": "uint16"} for a in range(100)]}]}
                    for i in range(max(1, devices))],
    }
    cfg_path = tmp / "gateway.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg_doc, sort_keys=False))
    from gateway import config as config_mod

    cfg = config_mod.load(cfg_path)
    log = open(tmp / "gateway.log", "wb")
    gw = subprocess.Popen([sys.executable, "-m", "gateway", "run", "-c", str(cfg_path)], cwd=ROOT, stdout=log, stderr=log)
    try:
        st = None
        deadline = time.monotonic() + 60
        while st is None:
            if gw.poll() is not None:
                raise RuntimeError(f"the gateway exited with {gw.returncode}: {(tmp / 'gateway.log').read_text()[-2000:]}")
            try:
                st = await control.request(cfg.control_socket, {"cmd": "status"})
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        await asyncio.sleep(WARMUP)
        s0, t0 = await control.request(cfg.control_socket, {"cmd": "status"}), time.monotonic()
        res = await measure(cfg, keys, args.queries)
        s1, t1 = await control.request(cfg.control_socket, {"cmd": "status"}), time.monotonic()
        rate = (s1["counters"]["read"] - s0["counters"]["read"]) / (t1 - t0)
        report(f"through the control socket while the gateway captures ({rate:,.0f} readings/s captured meanwhile, "
               f"{s1['counters'].get('discarded', 0)} discarded, devices {[d['state'] for d in s1['devices']]})", res)
        walls = []
        for _ in range(5):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "gateway", "trace", "lot", keys["lots"][0], "-c", str(cfg_path), "--json"],
                               cwd=ROOT, capture_output=True)
            walls.append((time.perf_counter() - t) * 1000)
            if r.returncode != 0:
                raise RuntimeError(r.stderr.decode())
        print(f"  whole CLI process (interpreter start, imports, config, query, output): {min(walls):.0f}..{max(walls):.0f} ms over 5 runs")
    finally:
        gw.terminate()
        try:
            gw.wait(60)
        except subprocess.TimeoutExpired:
            gw.kill()
        log.close()
        broker.stop()
        stop(sim)
        shutil.rmtree(tmp, ignore_errors=True)


def direct(path: Path, keys: dict[str, list], n: int) -> None:
    """The same queries on a read-only connection in this process (no daemon, no capture)."""
    from gateway.journal import trace

    rnd = random.Random(11)
    res: dict[str, list[tuple[float, int]]] = {"lot": [], "order": [], "material": []}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for _ in range(n):
        for kind, pool in (("lot", "lots"), ("order", "orders"), ("material", "batches")):
            t = time.perf_counter()
            found = trace.query(conn, kind, rnd.choice(keys[pool]))
            res[kind].append((time.perf_counter() - t, len(orjson.dumps(found))))
    report("direct, read-only connection, no gateway running", res)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--readings", type=int, default=10_000_000, help="raw telemetry readings (over the whole journal)")
    p.add_argument("--rate", type=int, default=2000, help="readings/s the gateway captures during the queries")
    p.add_argument("--queries", type=int, default=50, help="queries per kind")
    p.add_argument("--prune-interval", type=float, help="journal.prune_interval of the gateway (default: the gateway's)")
    p.add_argument("--keep", type=Path, help="build into this folder and keep it; a journal already there is reused")
    args = p.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-journal-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "journal.sqlite3"
    if not path.exists():
        build(path, args.days, args.readings * args.days // 30 if args.days != 30 else args.readings)
    else:
        print(f"reusing {path} ({path.stat().st_size / 2**30:.2f} GiB)")
    direct(path, keys_of(path), min(args.queries, 10))
    asyncio.run(run(path, args))
    if args.keep is None:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
