"""Seeded fuzzing of the page's pipeline listener: it runs inside capture, where an exception would
turn a good reading into an internal error, so no record may make it raise, and every frame it
sends is one well-formed server-sent event. FUZZ_EXAMPLES=20000 for a long run."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import StationConfig
from gateway.page.live import Live
from gateway.station.context import Context

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["x" * 500, "\n", "</script>", "\udcff"]), st.binary(max_size=8), st.datetimes(timezones=st.just(UTC)))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=4), scalars, max_size=3))
records = st.fixed_dictionaries(
    {"type": st.sampled_from(["scan", "rfid", "alarm", "context", "telemetry", None, 7]),
     "station": st.sampled_from(["st10", "st20", None, "", "\n"])},
    optional={k: values for k in ("ts", "device", "value", "status", "message", "quality", "expiry")},
)


def gateway():
    stations = [StationConfig(name="st10"), StationConfig(name="st20")]
    alarm = {"device": "press1", "station": "st10", "tag": "t", "alarm": "high", "value": 2**64 - 1, "since": datetime.now(UTC)}
    pipeline = SimpleNamespace(contexts={s.name: Context(s.name) for s in stations}, alarms={("press1", "t", "high"): alarm})
    return SimpleNamespace(pipeline=pipeline, cfg=SimpleNamespace(gateway=SimpleNamespace(stations=stations)))


@FUZZ
@given(st.lists(records, max_size=25))  # up to 25: past the 20 a station keeps
def test_no_record_makes_the_listener_raise_and_every_frame_is_one_event(recs):
    live = Live(gateway())
    watchers = [live.hub.join(s, size=1000) for s in ("st10", "st20", "None", "", "\n")]
    for rec in recs:
        live.on_record(rec)
    for c in watchers:
        while not c.queue.empty():
            f = c.queue.get_nowait()
            head, data, end = f.split(b"\n", 2)
            assert head.startswith(b"event: ") and data.startswith(b"data: ") and end == b"\n"
            orjson.loads(data[6:])
    for station, kept in live.board.scans.items():
        sent = [r for r in recs if r["type"] in ("scan", "rfid") and str(r["station"]) == station]
        assert [e["id"] for e in kept] == [e["id"] for e in kept][-20:] and len(kept) == min(len(sent), 20)
