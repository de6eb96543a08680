"""`shopfloor-gateway trace`: table, --json, --csv, exit statuses, with a gateway answering on the
control socket and without one; a seeded fuzz of hostile arguments and control requests.

Quick by default; FUZZ_EXAMPLES=20000 for a long run."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import sqlite3
import string

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import config as config_mod
from gateway.journal import schema
from gateway.ops import cli as cli_mod
from gateway.ops import control
from gateway.ops import trace as ops
from tests.conftest import Process, write_config
from tests.gateway.journal.rows import create as create_journal
from tests.gateway.journal.test_trace import GTIN, OP, T0, journal  # noqa: F401 - the fixture
from tests.helpers import cli

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), derandomize=True, deadline=None, database=None)


def test_table_without_a_gateway(journal):  # noqa: F811
    facts, _ = journal
    r = cli("trace", "lot", "LOT-A", "--journal", str(facts["path"]))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("trace lot LOT-A")
    for section in ("contexts (1)", "operators (2)", "materials (2)", "tags (2)", "alarms (2)", "environment (1)"):
        assert section in out
    assert "completeness: 82 records: 0 delivered, 82 buffered, 0 dead-lettered, 8 discarded" in out
    assert "INCOMPLETE" in out and f"gap seq {facts['hole'][0]}..{facts['hole'][1]}: 5 discarded (drop_oldest)" in out


def test_json_is_the_trace_with_iso_utc_times(journal):  # noqa: F811
    facts, _ = journal
    r = cli("trace", "material", "--batch", "B-7", "--gtin", GTIN, "--journal", str(facts["path"]), "--json")
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert t["query"] == {"kind": "material", "key": "B-7", "gtin": GTIN}
    assert t["journal"]["from"] == "2026-09-21T14:12:20.000Z"
    assert [(c["station"], c["lot"], c["at"]) for c in t["consumed"]] == [
        ("st10", "LOT-A", "2026-09-21T14:15:10.000Z"), ("st20", "LOT-B", "2026-09-21T14:25:40.000Z")]


def test_csv_has_one_table_per_section(journal):  # noqa: F811
    facts, _ = journal
    r = cli("trace", "operator", OP, "--journal", str(facts["path"]), "--csv")
    assert r.returncode == 0, r.stderr
    blocks = [list(csv.reader(io.StringIO(b))) for b in r.stdout.split("\n\n")]
    assert [b[0] for b in blocks] == [["contexts"], ["sessions"]]
    sessions = blocks[1]
    assert sessions[1] == ["station", "login_at", "logout_at"] and [s[0] for s in sessions[2:]] == ["st10", "st20"]
    assert sessions[3][2] == ""  # still logged in


def test_csv_quotes_formulas(tmp_path):
    assert ops.csv_value("value", "=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert ops.csv_value("count", -3) == -3


def test_nothing_found_says_what_the_journal_holds(journal):  # noqa: F811
    facts, _ = journal
    r = cli("trace", "lot", "LOT-NONE", "--journal", str(facts["path"]))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("nothing found for lot 'LOT-NONE'; the journal holds 2026-09-21T") and "Traceback" not in r.stderr
    r = cli("trace", "operator", OP, "--from", "2020-01-01", "--to", "2020-01-02", "--journal", str(facts["path"]))
    assert r.returncode == 1 and "between 2020-01-01" in r.stderr


def test_arguments_and_files_refused_with_one_line(tmp_path, journal):  # noqa: F811
    facts, _ = journal
    p = str(facts["path"])
    for args, status, text in (
        (["lot", "L\x1bOT"], 2, "error: LOT contains '\\x1b'"),
        (["lot", "L" * 65], 2, "error: LOT is 65 characters long"),
        (["material", "--batch", "B-7", "--gtin", "12ab"], 2, "error: --gtin: '12ab' is not a GTIN"),
        (["operator", OP, "--from", "yesterday"], 2, "error: --from: 'yesterday' is neither"),
        (["operator", OP, "--from", "2026-01-02", "--to", "2026-01-01"], 2, "error: --to is before --from"),
    ):
        r = cli("trace", *args, "--journal", p)
        assert (r.returncode, r.stderr.splitlines()[0][: len(text)]) == (status, text), r.stderr
    r = cli("trace", "lot", "X", "--journal", str(tmp_path / "missing.db"))
    assert r.returncode == 69 and r.stderr == f"error: no journal at {tmp_path / 'missing.db'} (has the gateway run with this configuration?)\n"
    old = tmp_path / "outbox.db"
    sqlite3.connect(old).execute("PRAGMA user_version=1").connection.close()
    r = cli("trace", "lot", "X", "--journal", str(old))
    assert r.returncode == 69 and f"file format 1, the capture log writes format {schema.FORMAT}" in r.stderr


def test_json_holds_each_tag_s_minutes_only_when_asked(journal):  # noqa: F811
    facts, _ = journal
    r = cli("trace", "lot", "LOT-A", "--journal", str(facts["path"]), "--json")
    assert r.returncode == 0, r.stderr
    tags = json.loads(r.stdout)["tags"]
    assert tags and all("series" not in t and t["count"] > 0 for t in tags)
    r = cli("trace", "lot", "LOT-A", "--journal", str(facts["path"]), "--json", "--series")
    assert r.returncode == 0, r.stderr
    with_series = json.loads(r.stdout)["tags"]
    assert [{k: v for k, v in t.items() if k != "series"} for t in with_series] == tags
    assert all(sum(p["count"] for p in t["series"]) == t["count"] for t in with_series)
    r = cli("trace", "lot", "LOT-A", "--journal", str(facts["path"]), "--series")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--series goes with --json" in r.stderr


def test_configured_journal_without_a_gateway(tmp_path, journal):  # noqa: F811
    facts, _ = journal
    path = write_config(tmp_path, 1, [], buffer={"path": str(facts["path"])})
    r = cli("trace", "order", "WO-1", "-c", str(path), "--json")
    assert r.returncode == 0, r.stderr
    assert [c["context_id"] for c in json.loads(r.stdout)["contexts"]] == ["c1", "c3"]


@contextlib.asynccontextmanager
async def answering(sock, journal_path):
    """The daemon's trace handler serving on a real control socket (the journal is this file)."""
    ready = asyncio.Event()
    task = asyncio.create_task(control.serve(sock, lambda req, peer: ops.handle(journal_path, req), ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_through_the_control_socket(tmp_path, journal):  # noqa: F811
    facts, _ = journal
    # the configured buffer does not exist: an answer can only come from the socket
    path = write_config(tmp_path, 1, [], buffer={"path": str(tmp_path / "absent" / "buffer.db")})
    sock = config_mod.load(path).control_socket
    sock.parent.mkdir()
    async with answering(sock, facts["path"]):
        r = await asyncio.to_thread(cli, "trace", "lot", "LOT-A", "-c", str(path), "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["completeness"]["readings"] == 82
        r = await asyncio.to_thread(cli, "trace", "lot", "LOT-NONE", "-c", str(path))
        assert r.returncode == 1 and "the journal holds 2026-09-21" in r.stderr
        rsp = await control.request(sock, {"cmd": "trace", "kind": "lot", "key": ["x"]})
        assert rsp == {"ok": False, "error": "key must be a string, got list", "code": "invalid"}


async def test_a_running_gateway_answers_trace(tmp_path, broker):
    """The real daemon serves `trace` on its own buffer file; an outbox of format 1 is not a journal."""
    path = write_config(tmp_path, broker.port, [{"kind": "synthetic", "name": "press", "rate": 10, "tags": 1}])
    gw = Process(path, tmp_path / "gateway.log")
    gw.start()
    try:
        sock = config_mod.load(path).control_socket
        rsp = None
        async with asyncio.timeout(20):
            while rsp is None:
                with contextlib.suppress(OSError):
                    rsp = await control.request(sock, {"cmd": "trace", "kind": "lot", "key": "LOT-A"})
                await asyncio.sleep(0.05) if rsp is None else None
        if rsp.get("ok"):
            assert rsp["trace"] is None and rsp["journal"] is not None
        else:
            assert rsp["code"] == "no_journal" and "file format" in rsp["error"]
        r = await asyncio.to_thread(cli, "trace", "lot", "LOT-A", "-c", str(path))
        assert r.returncode in (1, 69) and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    finally:
        assert gw.terminate() == 0


HOSTILE = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=()), max_size=20),
    st.sampled_from(["", "-", "--", "--json", "-c", "..", "'; DROP TABLE log; --", "%", "_", "\udcff", "x" * 5000, "LOT-A\n", "0" * 14]),
    st.text(alphabet=string.printable, max_size=30),
)


@FUZZ
@given(kind=st.sampled_from(["lot", "order", "operator", "material", "nope"]), args=st.lists(HOSTILE, max_size=4),
       flags=st.lists(st.sampled_from(["--json", "--csv", "--from", "--to", "--batch", "--gtin"]), max_size=3))
def test_fuzz_arguments_never_trace_back(fuzz_journal, kind, args, flags):
    argv = ["trace", kind, *[x for pair in zip(flags, args, strict=False) for x in pair], *args[len(flags):], "--journal", str(fuzz_journal)]
    err = io.StringIO()
    out = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = cli_mod.main(argv)
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code
    assert status in (0, 1, 2), (argv, status, err.getvalue())
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue()
    if status == 0:
        assert out.getvalue()


@pytest.fixture(scope="module")
def fuzz_journal(tmp_path_factory):
    from tests.gateway.journal.rows import Writer, create

    path = tmp_path_factory.mktemp("fuzz") / "journal.sqlite3"
    conn = create(path)
    w = Writer(conn)
    w.context("st10", "started", T0, context_id="c1", work_order="WO-1", lot="LOT-A", operators=[OP])
    w.readings("telemetry", "st10", "plc1", T0 + 1, [{"tag": "t", "value": 1.0}])
    w.close()
    conn.commit()
    conn.close()
    return path


EDGES = st.sampled_from([10**400, -(10**400), 2**63, float("nan"), float("inf"), "", "\x00", "1" * 65])
REQ_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70) | EDGES, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=6)


@FUZZ
@given(kind=st.one_of(st.sampled_from(list(ops.trace.KINDS)), REQ_VALUES), key=st.one_of(st.sampled_from(["LOT-A", OP, "WO-1"]), REQ_VALUES),
       opts=st.one_of(REQ_VALUES, st.dictionaries(st.sampled_from(["gtin", "since", "until", "series", "limits"]), REQ_VALUES, max_size=3)))
def test_fuzz_control_requests_are_answered(fuzz_journal, kind, key, opts):
    rsp = asyncio.run(ops.handle(fuzz_journal, {"cmd": "trace", "kind": kind, "key": key, "opts": opts}))
    assert isinstance(rsp, dict) and isinstance(rsp["ok"], bool)
    assert rsp["ok"] or rsp["code"] == "invalid"
    orjson.loads(orjson.dumps(rsp))  # what the control socket sends


@pytest.mark.parametrize("value", [10**400, -(10**400), float("nan"), float("inf"), True, "0"])
def test_control_request_times_must_be_unix_seconds(value, fuzz_journal):
    rsp = asyncio.run(ops.handle(fuzz_journal, {"cmd": "trace", "kind": "operator", "key": OP, "opts": {"since": value}}))
    assert rsp == {"ok": False, "error": "since must be unix seconds", "code": "invalid"}


@pytest.mark.parametrize("text", ["1e400", "nan", "0001-01-01", "3001-01-01", "1969-12-31T23:00:00Z", "-5"])
def test_cli_times_out_of_range_are_refused(text):
    with pytest.raises(ops.Invalid):
        ops.parse_time("--from", text)


def test_configured_limits_fill_in_for_tags_without_alarms(tmp_path, journal):  # noqa: F811
    facts, _ = journal
    devices = [{"kind": "modbus", "name": "plc1", "host": "127.0.0.1", "port": 1502,
                "polls": [{"interval": 1, "tags": [{"name": "speed", "address": 0, "limits": {"high": 130.0}},
                                                   {"name": "temp", "address": 1, "limits": {"high": 99.0, "low": 10.0}}]}]}]
    path = write_config(tmp_path, 1, devices, buffer={"path": str(facts["path"])})
    limits = ops.config_limits(config_mod.load(path))
    assert limits[("plc1", "speed")]["high"] == 130.0
    r = cli("trace", "lot", "LOT-A", "-c", str(path), "--json")
    assert r.returncode == 0, r.stderr
    tags = {t["tag"]: t for t in json.loads(r.stdout)["tags"]}
    assert tags["speed"]["limits"] == {"low": None, "high": 130.0}
    assert [(p["from"][11:19], p["to"][11:19]) for p in tags["speed"]["out_of_limits"]] == [("14:19:00", "14:20:00")]  # 131..135 rpm
    # the alarm records' limit (what applied then) over the configured one; the configured low fills in
    assert tags["temp"]["limits"] == {"low": 10.0, "high": 80.0}



def test_configured_limits_are_found_once_per_configuration(tmp_path):
    devices = [{"kind": "modbus", "name": "plc1", "host": "127.0.0.1", "port": 1502,
                "polls": [{"interval": 1, "tags": [{"name": "speed", "address": 0, "limits": {"high": 130.0}}]}]}]
    path = write_config(tmp_path, 1, devices)
    cfg = config_mod.load(path)
    assert ops.config_limits(cfg) is ops.config_limits(cfg)  # not walked again at each request
    devices[0]["polls"][0]["tags"][0]["limits"] = {"high": 120.0}
    reloaded = config_mod.load(write_config(tmp_path, 1, devices))
    assert ops.config_limits(reloaded)[("plc1", "speed")]["high"] == 120.0


def test_the_worker_keeps_its_connection_to_the_same_file(tmp_path, journal):  # noqa: F811
    facts, _ = journal

    def copy(src, dst):  # without a write-ahead log beside it, so that a replaced file leaves none behind
        a, b = sqlite3.connect(src), sqlite3.connect(dst, isolation_level=None)
        a.backup(b)
        b.execute("PRAGMA journal_mode=DELETE")
        a.close()
        b.close()

    path, empty = tmp_path / "kept.sqlite3", tmp_path / "empty.sqlite3"
    copy(facts["path"], path)
    create_journal(tmp_path / "new.sqlite3").close()
    copy(tmp_path / "new.sqlite3", empty)
    reader = ops.Reader()
    first = reader.conn(path)
    assert reader.conn(path) is first
    assert ops.run(path, "lot", "LOT-A", {}, None, first)["trace"]["contexts"][0]["lot"] == "LOT-A"
    # a file made anew at the path (restored, replaced) is opened anew, never read through the old one
    os.replace(empty, path)
    assert reader.conn(path) is not first
    assert ops.run(path, "lot", "LOT-A", {}, None, reader.conn(path))["trace"] is None
    reader.close()


async def test_a_dead_worker_costs_one_answer_not_the_daemon(fuzz_journal):
    w = ops.Worker()
    args = (fuzz_journal, "lot", "LOT-A", {}, None)
    found, span, code, _ = await w.run(*args)
    assert code == "" and orjson.loads(found)["contexts"][0]["lot"] == "LOT-A"
    for proc in list(w._pool._processes.values()):
        proc.kill()
        proc.join()
    assert (await w.run(*args))[2] == "worker_died"
    assert (await w.run(*args))[2] == ""
