"""A seeded journal with most of what a trace meets: contexts of one order meeting in one minute (a
changeover), a lot changed mid-context, a context still running, minutes without records, values
of every kind (full-precision floats, integers, text, bad quality, tiny and huge), alarms with limits, an
environmental sensor, an order of two contexts apart, dead letters, discards with and without seqs, and a sink cursor mid-way.

`QUERIES` are the trace queries asked of it (name -> kind, key, opts); `answers(path)` their answers.
The answers the trace gave before its fast paths are kept in trace_answers.json."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

from gateway.journal import trace
from tests.gateway.journal.rows import Writer, create

T0 = 1_790_000_040.0  # a minute boundary
GTIN = "09506000134352"
OPS = ("0000000007", "0000000042", "0000000099")
LIMITS = {("plc1", "speed"): {"high": 104.5, "low": 100.25}, ("plc1", "pressure"): {"low": 1.5}}
ANSWERS = Path(__file__).with_name("trace_answers.json")


def build(path: Path, seed: int = 5) -> None:
    rnd = random.Random(seed)
    conn = create(path)
    w = Writer(conn)
    conn.execute("BEGIN")
    serial = iter(range(1, 10_000))
    calls: list[tuple] = []  # (at, order, call, args, kwargs), run in time order: ingest time rises with seq

    def at_(at: float, call, *args: Any, **kw: Any) -> None:
        calls.append((at, len(calls), call, args, kw))

    def scan(station: str, at: float, batch: str, status: str = "accepted", kind: str = "gs1") -> None:
        n = next(serial)
        item = {"tag": "scan", "value": f"]d201{GTIN}10{batch}21S{n}", "kind": kind, "gtin": GTIN, "batch_lot": batch,
                "serial": f"S{n}", "expiry": "2027-06-30", "status": status,
                "reason_code": "ok" if status == "accepted" else "not_in_bom", "message": "m"}
        at_(at, w.readings, "scan", station, "scanner1", at, [item], kind="scanner_serial")

    def telemetry(station: str, start: float, minutes: int, skip: frozenset[int] = frozenset()) -> None:
        for i in range(minutes * 6):  # every 10 s
            at = start + i * 10 + rnd.uniform(0, 2)
            m = i // 6
            items = [{"tag": "temp", "value": rnd.uniform(60, 90), "unit": "degC", "quality": "good"}]
            if m not in skip:
                items.append({"tag": "speed", "value": rnd.randrange(98, 108), "unit": "rpm", "quality": "good"})
            bad = rnd.random() < 0.2
            items.append({"tag": "pressure", "value": "n/a" if bad else round(rnd.uniform(1, 3), 3), "unit": "bar",
                          "quality": "bad" if bad else "good"})
            # around zero and tiny: numbers SQLite and orjson write differently (1.0e-05, 1e-5)
            items.append({"tag": "offset", "value": rnd.choice((0.0, 5e-5, -3e-6, 1.5e15, rnd.uniform(-1, 1))), "unit": "mm", "quality": "good"})
            at_(at, w.readings, "telemetry", station, "plc1", at, items)
            if i % 6 == 0:
                at_(at + 1, w.readings, "telemetry", station, "env1", at + 1, [{"tag": "humidity", "value": rnd.uniform(30, 60), "unit": "%",
                                                                    "quality": "good"}], kind="env_sensor")

    def alarm(station: str, at: float, tag: str, name: str, state: str, limit: float, value: float) -> None:
        at_(at, w.readings, "alarm", station, "plc1", at, [{"tag": tag, "value": value, "alarm": name, "state": state, "limit": limit,
                                                   "severity": "warning"}])

    at_(T0 - 100, w.context, "st10", "operator_in", T0 - 100, operators=[OPS[0]])
    at_(T0 - 50, w.readings, "telemetry", "st10", "plc1", T0 - 50, [{"tag": "temp", "value": 61.0, "unit": "degC"}])  # unassigned
    at_(T0 + 7.25, w.context, "st10", "started", T0 + 7.25, context_id="c1", work_order="WO-1", operation="10", lot="LOT-A")
    telemetry("st10", T0 + 8, 5)
    for k in range(4):
        scan("st10", T0 + 20 + 30 * k, f"B-{k % 2 + 7}", "rejected" if k == 2 else "accepted")
    scan("st10", T0 + 50, "B-0", kind="badge")
    alarm("st10", T0 + 130, "temp", "high", "raised", 80.0, 85.5)
    alarm("st10", T0 + 200, "temp", "high", "cleared", 80.0, 70.25)
    at_(T0 + 150, w.context, "st10", "operator_in", T0 + 150, operators=[OPS[0], OPS[1]])
    at_(T0 + 310, w.context, "st10", "updated", T0 + 310, lot="LOT-A2")
    telemetry("st10", T0 + 312, 4, skip=frozenset({1, 2}))
    alarm("st10", T0 + 400, "pressure", "low", "raised", 1.2, 1.1)  # never cleared
    at_(T0 + 450, w.context, "st10", "operator_out", T0 + 450, operators=[OPS[1]])
    scan("st10", T0 + 500, "B-7")
    at_(T0 + 555.5, w.context, "st10", "ended", T0 + 555.5)
    # the next context starts in the minute the last one ended in: one point of both
    at_(T0 + 570, w.context, "st10", "started", T0 + 570, context_id="c2", work_order="WO-1", operation="10", lot="LOT-B")
    telemetry("st10", T0 + 571, 3)
    scan("st10", T0 + 600, "B-8")
    at_(T0 + 640, lambda: w.discard(*w.skip(4), 4, T0 + 640))
    at_(T0 + 760.125, w.context, "st10", "ended", T0 + 760.125)
    at_(T0 + 800, w.readings, "telemetry", "st10", "plc1", T0 + 800, [{"tag": "temp", "value": 59.5, "unit": "degC"}])  # unassigned
    at_(T0 + 5, w.context, "st20", "operator_in", T0 + 5, operators=[OPS[2]])
    at_(T0 + 30, w.context, "st20", "started", T0 + 30, context_id="c3", work_order="WO-2", operation="20", lot="LOT-C")
    telemetry("st20", T0 + 31, 6, skip=frozenset({3}))
    scan("st20", T0 + 120, "B-7")
    at_(T0 + 200, w.discard, None, None, 3, T0 + 200, "shed")
    at_(T0 + 400, w.context, "st20", "ended", T0 + 400)
    at_(T0 + 420, w.context, "st20", "started", T0 + 420, context_id="c4", work_order="WO-3", operation="20", lot="LOT-D",
        operators=[OPS[2], OPS[0]])
    telemetry("st20", T0 + 421, 3)
    scan("st20", T0 + 500, "B-9")
    at_(T0 + 700, w.context, "st20", "operator_out", T0 + 700, operators=[OPS[0]])
    # c4 is still running: its window ends with the journal
    # an order of two contexts with a record in every minute of each
    at_(T0 + 60, w.context, "st30", "started", T0 + 60, context_id="c5", work_order="WO-4", operation="30", lot="LOT-E")
    telemetry("st30", T0 + 61, 3)
    at_(T0 + 235, w.context, "st30", "ended", T0 + 235)
    at_(T0 + 300, w.context, "st30", "started", T0 + 300, context_id="c6", work_order="WO-4", operation="30", lot="LOT-F")
    telemetry("st30", T0 + 301, 3)
    at_(T0 + 475, w.context, "st30", "ended", T0 + 475)
    for _, _, call, args, kw in sorted(calls, key=lambda c: c[:2]):
        call(*args, **kw)
    c3 = [s for (s,) in conn.execute("SELECT seq FROM log WHERE context_id = 'c3' AND type = 'telemetry' ORDER BY seq")]
    w.dead(c3[3], "mqtt", "too large", T0 + 90)
    w.dead(c3[40], "mqtt", "too large", T0 + 250)
    w.cursor("mqtt", c3[20])
    w.close()
    conn.execute("COMMIT")
    conn.close()


QUERIES: dict[str, tuple[str, str, dict[str, Any]]] = {}
for lot in ("LOT-A", "LOT-A2", "LOT-B", "LOT-C", "LOT-D", "LOT-E", "LOT-X"):
    QUERIES[f"lot {lot}"] = ("lot", lot, {"limits": LIMITS})
    QUERIES[f"lot {lot} table"] = ("lot", lot, {"limits": LIMITS, "series": False})
for wo in ("WO-1", "WO-2", "WO-3", "WO-4"):
    QUERIES[f"order {wo}"] = ("order", wo, {})
    QUERIES[f"order {wo} limits"] = ("order", wo, {"limits": LIMITS})
    QUERIES[f"order {wo} table"] = ("order", wo, {"series": False})
for batch in ("B-7", "B-8", "B-9"):
    QUERIES[f"material {batch}"] = ("material", batch, {})
QUERIES["material B-7 gtin"] = ("material", "B-7", {"gtin": GTIN[1:]})
for op in OPS:
    QUERIES[f"operator {op}"] = ("operator", op, {})
    QUERIES[f"operator {op} window"] = ("operator", op, {"since": T0 + 100, "until": T0 + 300})


def answers(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {name: trace.query(conn, kind, key, **opts) for name, (kind, key, opts) in QUERIES.items()}
    finally:
        conn.close()


def keep() -> None:
    """Write trace_answers.json from what the trace answers now."""
    import hashlib
    import tempfile

    import orjson

    from gateway.ops import trace as ops

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.sqlite3"
        build(path)
        got = answers(path)
    texts = {k: hashlib.sha256(ops.as_json(orjson.loads(orjson.dumps(v))).encode()).hexdigest() for k, v in got.items() if v}
    ANSWERS.write_bytes(orjson.dumps({"answers": got, "as_json_sha256": texts}, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    keep()
