"""Trace queries on the journal: what went into a lot or an order (backward), where a material batch
went (forward), and what an operator worked on.

`query(conn, kind, key, **opts)` answers in the shape the station page and `shopfloor-gateway trace`
share (times in unix seconds); None when the journal holds nothing for the key. `conn` is a
read-only connection to the capture log's file (gateway.journal.schema); nothing here writes.

Completeness comes with every backward trace: each record of the window is delivered (every sink's
cursor is past it), still buffered, or dead-lettered; the overflow policy's discards whose seq range
(or, without one, time) falls in the window are listed as gaps. A discard range may also hold records
of other stations, since seqs interleave: a gap is reported when in doubt, never hidden.
"""

from __future__ import annotations

import functools
import itertools
import math
import sqlite3
import typing
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson

from gateway.registry import DeviceConfig

KINDS = ("lot", "material", "order", "operator")
# Scans that change the station context rather than consume material.
CONTEXT_SCANS = frozenset({"work_order", "badge", "command", "lot"})
HIGH, LOW = ("high", "high_high"), ("low", "low_low")  # alarm names giving a tag's limits, preferred first
WALK = 256  # context events read per step when walking a station's history


class Journal:
    """The few reads the queries share, with the chunks they decoded kept for the query's life."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._chunks: dict[int, tuple[int, int, str, str, list[dict[str, Any]]]] = {}

    def span(self) -> dict[str, float] | None:
        """The time range the journal holds (ingest times, in seq order: commit order)."""
        c = self.conn
        first = c.execute("SELECT at FROM log ORDER BY seq LIMIT 1").fetchone()
        if first is None:
            return None
        last = c.execute("SELECT at FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        return {"from": first[0], "to": last[0]}

    def seq_at(self, t: float) -> int:
        """The first seq ingested at or after `t` (ingest time rises with seq); past the end: last + 1."""
        c = self.conn
        first = c.execute("SELECT seq FROM log ORDER BY seq LIMIT 1").fetchone()
        if first is None:
            return 0
        lo, hi = first[0], c.execute("SELECT last FROM log ORDER BY seq DESC LIMIT 1").fetchone()[0] + 1
        while lo < hi:
            mid = (lo + hi) // 2
            row = c.execute("SELECT at FROM log WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)).fetchone()
            if row is not None and row[0] >= t:
                hi = mid
            else:
                lo = mid + 1
        row = c.execute("SELECT seq FROM log WHERE seq >= ? ORDER BY seq LIMIT 1", (lo,)).fetchone()
        return row[0] if row is not None else lo

    def records(self, seq: int, last: int, station: str, device: str, head: bytes, items: bytes) -> list[dict[str, Any]]:
        got = self._chunks.get(seq)
        if got is None:
            h = orjson.loads(head)
            recs = [{**h, **orjson.loads(line), "seq": seq + i} for i, line in enumerate(items.split(b"\n"))]
            for r in recs:
                r.setdefault("station", station)
                r.setdefault("device", device)
            got = self._chunks[seq] = (seq, last, station, device, recs)
        return got[4]

    def record(self, seq: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT seq, last, station, device, at, head, items FROM log WHERE seq <= ? ORDER BY seq DESC LIMIT 1", (seq,)
        ).fetchone()
        if row is None or row[1] < seq:
            return None
        rec = self.records(row[0], row[1], row[2], row[3], row[5], row[6])[seq - row[0]]
        rec.setdefault("_at", row[4])
        return rec

    def records_at(self, seqs: list[int]) -> dict[int, dict[str, Any]]:
        """record(seq) of each of `seqs` found: those starting a chunk (a scan is one) read in one
        statement, not one each; the others as record() finds them."""
        out: dict[int, dict[str, Any]] = {}
        for seq, last, station, device, at, head, items in self.conn.execute(
                "SELECT seq, last, station, device, at, head, items FROM log WHERE seq IN (SELECT value FROM json_each(?))",
                (orjson.dumps(seqs).decode(),)):
            rec = self.records(seq, last, station, device, head, items)[0]
            rec.setdefault("_at", at)
            out[seq] = rec
        for seq in seqs:
            if seq not in out and (rec := self.record(seq)) is not None:
                out[seq] = rec
        return out


def when(rec: dict[str, Any], default: float | None = None) -> float | None:
    """A record's time: `ts` (when it happened), else its ingest time."""
    for key in ("ts", "ingested_at"):
        v = rec.get(key)
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, str):
            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return rec.get("_at", default)


def query(conn: sqlite3.Connection, kind: str, key: str, **opts: Any) -> dict[str, Any] | None:
    if kind not in KINDS:
        raise ValueError(f"unknown trace kind {kind!r}; one of {', '.join(KINDS)}")
    j = Journal(conn)
    span = j.span()
    if span is None:
        return None
    if kind == "material":
        return material(j, span, key, opts.get("gtin"))
    if kind == "operator":
        return operator(j, span, key, opts.get("since"), opts.get("until"))
    return backward(j, span, kind, key, opts.get("limits") or {}, opts.get("series", True), opts.get("series_json", False))


# -- contexts -----------------------------------------------------------------------------------

CONTEXT_COLUMNS = "context_id, station, work_order, operation, lot, started_at, ended_at, first_seq, last_seq"


def _context(row: tuple) -> dict[str, Any]:
    cid, station, wo, op, lot, start, end, first, last = row
    return {"context_id": cid, "station": station, "work_order": wo, "operation": op, "lot": lot,
            "started_at": start, "ended_at": end, "_first": first, "_last": last}


def contexts_of(j: Journal, kind: str, key: str) -> list[dict[str, Any]]:
    c = j.conn
    if kind == "order":
        rows = c.execute(f"SELECT {CONTEXT_COLUMNS} FROM contexts WHERE work_order = ?", (key,)).fetchall()
    else:
        rows = c.execute(f"SELECT {CONTEXT_COLUMNS} FROM contexts WHERE lot = ?", (key,)).fetchall()
        # A context whose lot was changed later still ran this lot for a while: its records say so.
        known = {r[0] for r in rows}
        more = [r[0] for r in c.execute(
            # CROSS JOIN keeps this order: the lot's few records first, never every context_id key
            "SELECT DISTINCT k2.value FROM keys k1 CROSS JOIN keys k2 ON k2.seq = k1.seq AND k2.key = 'context_id' "
            "WHERE k1.key = 'lot' AND k1.value = ?", (key,)) if r[0] not in known]
        for cid in more:
            rows += c.execute(f"SELECT {CONTEXT_COLUMNS} FROM contexts WHERE context_id = ?", (cid,)).fetchall()
    return sorted((_context(r) for r in rows), key=lambda x: (x["started_at"] or 0, x["station"]))


def public(ctx: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ctx.items() if not k.startswith("_")}


# -- backward: lot and order --------------------------------------------------------------------


def backward(j: Journal, span: dict[str, float], kind: str, key: str, config_limits: dict, with_series: bool = True,
             series_json: bool = False) -> dict[str, Any] | None:
    ctxs = contexts_of(j, kind, key)
    if not ctxs:
        return None
    out: dict[str, Any] = {"query": {"kind": kind, "key": key}, "journal": span, "contexts": [public(c) for c in ctxs],
                           "operators": [], "materials": [], "tags": [], "alarms": [], "environment": []}
    ranges: list[tuple[int, int, str | None]] = []
    kinds: dict[tuple[str, str], str] = {}
    for ctx in ctxs:
        end = ctx["ended_at"] if ctx["ended_at"] is not None else span["to"]
        ctx["_end"] = end
        events, alarms = [], []
        for seq, last, type_, station, device, only, head, items in j.conn.execute(
            "SELECT seq, last, type, station, device, only, head, CASE WHEN type = 'telemetry' THEN NULL ELSE items END "
            "FROM log WHERE context_id = ?", (ctx["context_id"],)
        ):
            ranges.append((seq, last, only))
            if type_ == "telemetry":
                if (station, device) not in kinds:
                    kinds[(station, device)] = orjson.loads(head).get("device_kind") or ""
                continue
            for rec in j.records(seq, last, station, device, head, items):
                if type_ == "context":
                    events.append(rec)
                elif type_ == "alarm":
                    alarms.append(rec)
                elif rec.get("kind") not in CONTEXT_SCANS:
                    out["materials"].append(material_row(rec, ctx["context_id"]))
        out["operators"] += sessions_in(ctx, events)
        out["alarms"] += [alarm_row(a) for a in alarms]
        ctx["_alarms"] = alarms
    _fill_kinds(j, kinds, ctxs)
    tags = tag_rows(j, ctxs, config_limits, with_series, series_json)
    for t in tags:
        (out["environment"] if kinds.get((t["station"], t["device"]), "") in environmental() else out["tags"]).append(t)
    out["materials"].sort(key=lambda m: m["seq"])
    out["alarms"].sort(key=lambda a: a["seq"])
    out["completeness"] = completeness(j, ranges, ctxs)
    return out


@functools.cache
def environmental() -> frozenset[str]:
    """Device kinds whose readings are the station's environment, as their config classes declare."""
    union = typing.get_args(DeviceConfig)[0]
    return frozenset(typing.get_args(c.model_fields["kind"].annotation)[0] for c in typing.get_args(union) if c.environment)


def _fill_kinds(j: Journal, kinds: dict[tuple[str, str], str], ctxs: list[dict[str, Any]]) -> None:
    """Device kinds not in a chunk's head are in its first record."""
    for (station, device), kind in list(kinds.items()):
        if kind:
            continue
        for ctx in ctxs:
            row = j.conn.execute(
                "SELECT items FROM log WHERE context_id = ? AND device = ? AND type = 'telemetry' LIMIT 1", (ctx["context_id"], device)
            ).fetchone()
            if row is not None:
                kinds[(station, device)] = orjson.loads(row[0].split(b"\n", 1)[0]).get("device_kind") or ""
                break


def material_row(rec: dict[str, Any], context_id: str | None) -> dict[str, Any]:
    return {
        "seq": rec["seq"], "at": when(rec), "station": rec.get("station"), "device": rec.get("device"),
        "context_id": rec.get("context_id", context_id), "status": rec.get("status"), "reason_code": rec.get("reason_code"),
        "message": rec.get("message"), "gtin": rec.get("gtin"), "batch": batch_of(rec), "serial": rec.get("serial"),
        "expiry": rec.get("expiry"), "value": rec.get("value"),
    }


def batch_of(rec: dict[str, Any]) -> Any:
    return rec.get("batch_lot", rec.get("batch"))


def alarm_row(rec: dict[str, Any]) -> dict[str, Any]:
    return {"seq": rec["seq"], "at": when(rec), "device": rec.get("device"), "tag": rec.get("tag"), "alarm": rec.get("alarm"),
            "state": rec.get("state"), "severity": rec.get("severity"), "limit": rec.get("limit"), "value": rec.get("value")}


def sessions_in(ctx: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Who was logged in at the station during the context, from its events (clipped to the context:
    an operator logged in before it started counts from its start)."""
    out: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for ev in sorted(events, key=lambda e: e["seq"]):
        at = when(ev, ctx["started_at"])
        now = set(ev.get("operators") or ())
        for op in now - open_.keys():
            open_[op] = {"operator": op, "station": ctx["station"], "context_id": ctx["context_id"],
                         "login_at": max(at, ctx["started_at"] or at), "logout_at": None}
        for op in set(open_) - now:
            s = open_.pop(op)
            s["logout_at"] = at
            out.append(s)
    for s in open_.values():
        s["logout_at"] = ctx["ended_at"]
        out.append(s)
    return sorted(out, key=lambda s: (s["login_at"] or 0, s["operator"]))


# -- tags ---------------------------------------------------------------------------------------


# Per tag of one context: its totals, its first and last minute, its number of minutes and (POINTS)
# its points as one JSON array built by SQLite in key order (the primary key's: by minute), so that
# minutes are neither fetched nor made into objects one by one. A point's min, max and mean are what
# SQLite's JSON says of them (15 significant digits).
TOTALS = "station, device, tag, max(unit), sum(count), sum(numeric), min(min), max(max), sum(sum), min(minute), max(minute), count(*)"
MEAN = "CASE WHEN numeric > 0 THEN sum / numeric END"
POINT = f"json_object('t', minute * 60.0, 'min', min, 'max', max, 'mean', {MEAN}, 'count', count)"
POINTS = f"SELECT {TOTALS}, json_group_array({POINT}) FROM minutes WHERE context_id = ? GROUP BY device, tag"
NO_POINTS = f"SELECT {TOTALS}, NULL FROM minutes WHERE context_id = ? GROUP BY device, tag"
TAG_POINTS = f"SELECT json_group_array({POINT}) FROM minutes WHERE context_id = ? AND device = ? AND tag = ?"
# Minutes in two contexts (a changeover) are merged weighted by their numeric values, which points do not carry.
MERGING = (f"SELECT minute, json_array(count, min, max, {MEAN}, numeric) FROM minutes "
           "WHERE context_id = ? AND device = ? AND tag = ? AND minute BETWEEN ? AND ?")


class Part(typing.NamedTuple):
    """A tag's minutes in one context: first and last minute, how many, their points as JSON (None:
    not read), and the first and last minute of the context's window."""

    context_id: str
    first: int
    last: int
    n: int
    points: str | None
    window: tuple[int, int]


def tag_rows(j: Journal, ctxs: list[dict[str, Any]], config_limits: dict, with_series: bool = True,
             series_json: bool = False) -> list[dict[str, Any]]:
    """Per tag: totals, limits, periods out of them and (`with_series`) one point per minute;
    `series_json`: a series is an orjson.Fragment where SQLite's JSON is the whole of it."""
    per: dict[tuple[str, str, str], list] = {}
    windows: list[tuple[float, float]] = []
    sql = POINTS if with_series else NO_POINTS
    for ctx in ctxs:
        windows.append((ctx["started_at"] if ctx["started_at"] is not None else ctx["_end"], ctx["_end"]))
        cid = ctx["context_id"]
        window = (math.floor(windows[-1][0] / 60), math.floor(windows[-1][1] / 60))
        for station, device, tag, unit, count, numeric, lo, hi, total, first, last, n, points in j.conn.execute(sql, (cid,)):
            k = (station, device, tag)
            part = Part(cid, first, last, n, points, window)
            old = per.get(k)
            per[k] = [unit, count, numeric, lo, hi, total, [part]] if old is None else [
                old[0] or unit, old[1] + count, old[2] + numeric, _min(old[3], lo), _max(old[4], hi), _add(old[5], total), old[6] + [part]]
    minutes = _window_minutes(windows)
    alarms = [a for ctx in ctxs for a in ctx["_alarms"]]
    out = []
    for k in sorted(per):
        station, device, tag = k
        unit, count, numeric, lo, hi, total, parts = per[k]
        tag_alarms = [a for a in alarms if a.get("device") == device and a.get("tag") == tag and a.get("station", station) == station]
        limits = limits_of(tag_alarms, config_limits.get((device, tag)))
        # SQLite writes an infinite value as Inf, which is not JSON: such a series is decoded, as it always was
        text = _text(parts, minutes) if series_json and with_series and all(v is None or math.isfinite(v) for v in (lo, hi, total)) else None
        points = _points(j, device, tag, parts) if limits or (with_series and text is None) else []
        row = {
            "station": station, "device": device, "tag": tag, "unit": unit, "count": count, "min": lo, "max": hi,
            "mean": total / numeric if numeric and total is not None else None,
            "limits": limits,
            "out_of_limits": out_of_limits(points, limits, tag_alarms, windows),
        }
        if with_series:
            row["series"] = orjson.Fragment(text) if text is not None else series(points, minutes)
        out.append(row)
    return out


def _text(parts: list[Part], minutes: list[int]) -> str | None:
    """The series as JSON from the parts' points, without decoding them, when they make it (else
    None): parts apart, and either one point a minute of the window between them, or each part's
    minutes without a hole and inside its context's window (the window's other minutes are gaps)."""
    if len(parts) == 1 and parts[0].n == len(minutes):
        return parts[0].points
    ordered = sorted(parts, key=lambda p: p.first)
    if any(a.last >= b.first for a, b in itertools.pairwise(ordered)):
        return None
    if sum(p.n for p in parts) == len(minutes):
        return "[" + ",".join(p.points[1:-1] for p in ordered) + "]"
    if not all(p.n == p.last - p.first + 1 and p.window[0] <= p.first and p.last <= p.window[1] for p in ordered):
        return None
    out: list[str] = []
    i = 0
    for p in ordered:
        at = bisect_left(minutes, p.first, i)
        out += [_gap(m) for m in minutes[i:at]]
        out.append(p.points[1:-1])
        i = at + p.n  # the part's minutes are the window's from `at` on
    out += [_gap(m) for m in minutes[i:]]
    return "[" + ",".join(out) + "]"


def _gap(minute: int) -> str:
    return orjson.dumps({"t": minute * 60.0, "min": None, "max": None, "mean": None, "count": 0}).decode()


def _points(j: Journal, device: str, tag: str, parts: list[Part]) -> list[dict[str, Any]]:
    """The tag's points over its parts by minute; a minute in several parts (a changeover) becomes one."""
    lists = [orjson.loads(p.points if p.points is not None else j.conn.execute(TAG_POINTS, (p.context_id, device, tag)).fetchone()[0])
             for p in parts]
    if len(lists) == 1:
        return lists[0]
    points = sorted(itertools.chain.from_iterable(lists), key=lambda p: p["t"])
    shared = {a["t"] for a, b in itertools.pairwise(points) if a["t"] == b["t"]}
    if not shared:
        return points
    return _merged(j, device, tag, parts, points, {int(t) // 60 for t in shared})


def _merged(j: Journal, device: str, tag: str, parts: list[Part], points: list[dict[str, Any]], shared: set[int]) -> list[dict[str, Any]]:
    """Points with each shared minute's rows ([count, min, max, mean, numeric], in the parts' order)
    merged into one: counts added, extremes kept, means weighted by numeric values."""
    lo, hi = min(shared), max(shared)
    rows: dict[int, list] = {}
    for p in parts:
        for minute, row in j.conn.execute(MERGING, (p.context_id, device, tag, lo, hi)):
            if minute not in shared:
                continue
            r = orjson.loads(row)
            q = rows.get(minute)
            if q is None:
                rows[minute] = r
                continue
            n = q[4] + r[4]
            mean = ((q[3] or 0) * q[4] + (r[3] or 0) * r[4]) / n if n else None
            rows[minute] = [q[0] + r[0], _min(q[1], r[1]), _max(q[2], r[2]), mean, n]
    out: list[dict[str, Any]] = []
    for p in points:
        m = int(p["t"]) // 60
        if m not in shared:
            out.append(p)
        elif not out or out[-1]["t"] != p["t"]:
            c, mn, mx, mean, _ = rows[m]
            out.append({"t": p["t"], "min": mn, "max": mx, "mean": mean, "count": c})
    return out


def series(points: list[dict[str, Any]], minutes: list[int]) -> list[dict[str, Any]]:
    """One point per minute of the window; a minute without records has count 0 (a gap stays visible)."""
    if len(points) == len(minutes):
        return points
    have = {int(p["t"]) // 60: p for p in points}
    return [have.get(m) or {"t": m * 60.0, "min": None, "max": None, "mean": None, "count": 0} for m in minutes]


def _add(a, b):
    return b if a is None else a if b is None else a + b


def _min(a, b):
    return b if a is None else a if b is None else min(a, b)


def _max(a, b):
    return b if a is None else a if b is None else max(a, b)


def _window_minutes(windows: list[tuple[float, float]]) -> list[int]:
    seen: set[int] = set()
    for start, end in windows:
        seen.update(range(math.floor(start / 60), math.floor(end / 60) + 1))
    return sorted(seen)


def limits_of(alarms: list[dict[str, Any]], configured: dict | None) -> dict[str, Any] | None:
    """A tag's limits: those its alarm records carried (what applied then), else the configured ones."""
    found: dict[str, dict[str, Any]] = {}
    for a in alarms:
        if a.get("alarm") in HIGH + LOW and isinstance(a.get("limit"), int | float):
            found.setdefault(a["alarm"], a["limit"])
    high = next((found[n] for n in HIGH if n in found), None)
    low = next((found[n] for n in LOW if n in found), None)
    if configured:
        high = high if high is not None else next((configured.get(n) for n in HIGH if configured.get(n) is not None), None)
        low = low if low is not None else next((configured.get(n) for n in LOW if configured.get(n) is not None), None)
    if high is None and low is None:
        return None
    return {"low": low, "high": high}


def out_of_limits(points: list[dict[str, Any]], limits: dict | None, alarms: list[dict[str, Any]],
                  windows: list[tuple[float, float]]) -> list[dict[str, float]]:
    """Periods outside the limits: minutes whose extremes crossed them, and raised..cleared alarm pairs."""
    periods: list[tuple[float, float]] = []
    if limits:
        lo, hi = limits["low"], limits["high"]
        for p in points:
            if (hi is not None and p["max"] is not None and p["max"] > hi) or (lo is not None and p["min"] is not None and p["min"] < lo):
                periods.append((p["t"], p["t"] + 60.0))
    raised: dict[str, float] = {}
    for a in sorted(alarms, key=lambda a: a["seq"]):
        name, at = str(a.get("alarm")), when(a)
        if a.get("state") == "raised":
            raised.setdefault(name, at)
        elif a.get("state") == "cleared":
            start = raised.pop(name, None)
            periods.append((start if start is not None else _window_start(windows, at), at))
    for start in raised.values():
        periods.append((start, _window_end(windows, start)))
    return [{"from": a, "to": b} for a, b in _merge(periods)]


def _window_start(windows: list[tuple[float, float]], at: float) -> float:
    return max((s for s, e in windows if s <= at), default=at)


def _window_end(windows: list[tuple[float, float]], at: float) -> float:
    return min((e for s, e in windows if e >= at), default=at)


def _merge(periods: list[tuple[float, float]]) -> Iterator[tuple[float, float]]:
    cur = None
    for a, b in sorted(periods):
        if cur is not None and a <= cur[1]:
            cur = (cur[0], max(cur[1], b))
            continue
        if cur is not None:
            yield cur
        cur = (a, b)
    if cur is not None:
        yield cur


# -- completeness -------------------------------------------------------------------------------


def completeness(j: Journal, ranges: list[tuple[int, int, str | None]], ctxs: list[dict[str, Any]]) -> dict[str, Any]:
    c = j.conn
    cursors = dict(c.execute("SELECT sink, seq FROM cursors"))
    low = min(cursors.values()) if cursors else None
    ranges.sort()
    readings = delivered = 0
    for first, last, only in ranges:
        n = last - first + 1
        readings += n
        upto = cursors.get(only) if only is not None else low
        if upto is not None:
            delivered += max(0, min(last, upto) - first + 1)
    dead = dead_below = 0
    if ranges:
        starts = [r[0] for r in ranges]
        for (seq,) in c.execute("SELECT DISTINCT seq FROM dead_letter WHERE seq BETWEEN ? AND ?", (ranges[0][0], max(r[1] for r in ranges))):
            i = bisect_right(starts, seq) - 1
            if i >= 0 and ranges[i][1] >= seq:
                dead += 1
                upto = cursors.get(ranges[i][2]) if ranges[i][2] is not None else low
                dead_below += upto is not None and seq <= upto
    gaps = discards(c, ctxs)
    return {"readings": readings, "delivered": delivered - dead_below, "buffered": readings - delivered - (dead - dead_below),
            "dead_lettered": dead, "discarded": sum(g["count"] for g in gaps), "gaps": gaps}


def discards(c: sqlite3.Connection, ctxs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Discards that may have taken records of the contexts: seq range inside a context's span, or
    (discarded before getting a seq) time inside its interval."""
    rows = c.execute("SELECT id, first_seq, last_seq, count, policy, at FROM discards").fetchall() if ctxs else []
    out = []
    for id_, first, last, count, policy, at in rows:
        for ctx in ctxs:
            start = ctx["started_at"] if ctx["started_at"] is not None else ctx["_end"]
            if first is None or last is None:
                hit = start <= at <= ctx["_end"]
            else:
                end_seq = ctx["_last"] if ctx["ended_at"] is not None else math.inf
                hit = first <= end_seq and last >= ctx["_first"]
            if hit:
                out.append({"first_seq": first, "last_seq": last, "count": count, "policy": policy, "at": at})
                break
    return out


# -- forward: material --------------------------------------------------------------------------


def gtin_forms(gtin: str) -> list[str]:
    """A GTIN as typed and as the 14 digits a GS1 element string carries."""
    forms = [gtin]
    if gtin.isdigit() and len(gtin) in (8, 12, 13):
        forms.append(gtin.zfill(14))
    if gtin.isdigit() and len(gtin) == 14 and gtin.startswith("0"):
        forms.append(gtin.lstrip("0").zfill(13))
    return forms


def material(j: Journal, span: dict[str, float], batch: str, gtin: str | None) -> dict[str, Any] | None:
    c = j.conn
    if gtin:
        forms = gtin_forms(gtin)
        # the batch's few records first, then their GTIN key (a GTIN alone may have countless records)
        seqs = [s for (s,) in c.execute(
            f"SELECT k1.seq FROM keys k1 CROSS JOIN keys k2 ON k2.seq = k1.seq AND k2.key = 'gtin' AND k2.value IN ({','.join('?' * len(forms))}) "
            "WHERE k1.key = 'batch' AND k1.value = ? ORDER BY k1.seq", (*forms, batch))]
    else:
        seqs = [s for (s,) in c.execute("SELECT seq FROM keys WHERE key = 'batch' AND value = ? ORDER BY seq", (batch,))]
    consumed = []
    recs = j.records_at(seqs)
    for s in seqs:
        rec = recs.get(s)
        if rec is None or rec.get("type") not in ("scan", "rfid"):
            continue
        consumed.append({
            "seq": s, "at": when(rec), "station": rec.get("station"), "device": rec.get("device"), "context_id": rec.get("context_id"),
            "work_order": rec.get("work_order"), "operation": rec.get("operation"), "lot": rec.get("lot"),
            "gtin": rec.get("gtin"), "batch": batch_of(rec), "serial": rec.get("serial"), "status": rec.get("status"),
        })
    if not consumed:
        return None
    q: dict[str, Any] = {"kind": "material", "key": batch}
    if gtin:
        q["gtin"] = gtin
    return {"query": q, "journal": span, "consumed": consumed}


# -- operator -----------------------------------------------------------------------------------


def operator(j: Journal, span: dict[str, float], op: str, since: float | None, until: float | None) -> dict[str, Any] | None:
    since = span["from"] if since is None else float(since)
    until = span["to"] if until is None else float(until)
    c = j.conn
    lo, hi = j.seq_at(since), j.seq_at(until) - 1
    before = c.execute("SELECT max(seq) FROM keys WHERE key = 'operator' AND value = ? AND seq < ?", (op, lo)).fetchone()[0]
    start = before if before is not None else lo
    stations = [s for (s,) in c.execute(
        "SELECT DISTINCT station FROM keys WHERE key = 'operator' AND value = ? AND seq BETWEEN ? AND ?", (op, start, hi))]
    sessions = []
    for station in sorted(stations):
        sessions += [s for s in station_sessions(j, station, op, lo, hi) if _overlaps(s, since, until)]
    if not sessions:
        return None
    ctxs = []
    for s in sessions:
        end = s["logout_at"] if s["logout_at"] is not None else span["to"]
        for row in c.execute(
            f"SELECT {CONTEXT_COLUMNS} FROM contexts WHERE station = ? AND started_at <= ? AND (ended_at IS NULL OR ended_at >= ?)",
            (s["station"], min(end, until), max(s["login_at"] or since, since)),
        ):
            ctxs.append(_context(row))
    seen, unique = set(), []
    for ctx in sorted(ctxs, key=lambda x: (x["started_at"] or 0, x["station"])):
        if ctx["context_id"] not in seen:
            seen.add(ctx["context_id"])
            unique.append(public(ctx))
    return {"query": {"kind": "operator", "key": op, "since": since, "until": until}, "journal": span,
            "sessions": sessions, "contexts": unique}


def _overlaps(s: dict[str, Any], since: float, until: float) -> bool:
    return (s["login_at"] is None or s["login_at"] <= until) and (s["logout_at"] is None or s["logout_at"] >= since)


def station_sessions(j: Journal, station: str, op: str, lo: int, hi: int) -> list[dict[str, Any]]:
    """An operator's sessions at one station, from its context events: logged in at the first event
    that lists them, out at the first that does not. A session open at `lo` is followed back to its
    login, one open at `hi` forward to its logout (None: still logged in)."""
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    first = True
    before = next(_events(j, station, 0, lo - 1, descending=True, step=1), None)  # the state at `lo`
    for ev in itertools.chain([before] if before else [], _events(j, station, lo, hi)):
        present = op in (ev.get("operators") or ())
        if first and present:
            cur = {"station": station, "login_at": _login_before(j, station, op, ev["seq"], when(ev)), "logout_at": None}
        elif present and cur is None:
            cur = {"station": station, "login_at": when(ev), "logout_at": None}
        elif not present and cur is not None:
            cur["logout_at"] = when(ev)
            out.append(cur)
            cur = None
        first = False
    if cur is not None:
        cur["logout_at"] = _logout_after(j, station, op, hi)
        out.append(cur)
    return out


def _events(j: Journal, station: str, lo: int, hi: int, descending: bool = False, step: int = WALK) -> Iterator[dict[str, Any]]:
    """The station's context events with seq in lo..hi, read WALK at a time through the kept-records index."""
    order = "DESC" if descending else ""
    while lo <= hi:
        rows = j.conn.execute(
            f"SELECT seq, last, station, device, head, items FROM log WHERE protected = 1 AND seq BETWEEN ? AND ? "
            f"AND type = 'context' AND station = ? ORDER BY seq {order} LIMIT {step}", (lo, hi, station)
        ).fetchall()
        for seq, last, st, device, head, items in rows:
            recs = j.records(seq, last, st, device, head, items)
            yield from (reversed(recs) if descending else recs)
        if len(rows) < step:
            return
        if descending:
            hi = rows[-1][0] - 1
        else:
            lo = rows[-1][1] + 1


def _login_before(j: Journal, station: str, op: str, seq: int, at: float | None) -> float | None:
    login = at
    for ev in _events(j, station, 0, seq - 1, descending=True):
        if op not in (ev.get("operators") or ()):
            return login
        login = when(ev)
    return login


def _logout_after(j: Journal, station: str, op: str, seq: int) -> float | None:
    for ev in _events(j, station, seq + 1, 1 << 62):
        if op not in (ev.get("operators") or ()):
            return when(ev)
    return None
