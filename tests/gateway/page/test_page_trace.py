"""The trace view: the answer's shape (shared with `trace --json`) rendered as tables and a chart,
and the routes on a real gateway."""

from __future__ import annotations

import re

import aiohttp

from gateway.page import trace
from gateway.page.labels import EN, ZH
from simulators.broker import free_port
from tests.conftest import InProcess, write_config

T0 = 1764000000.0


def lot_answer() -> dict:
    series = [{"t": T0 + 60 * i, "min": 180.0 + i, "max": 181.0 + i, "mean": 180.5 + i, "count": 60} for i in range(5)]
    return {
        "query": {"kind": "lot", "key": "LOT-A42"},
        "journal": {"from": T0 - 3600, "to": T0 + 3600},
        "contexts": [{"context_id": "c1", "station": "st10", "work_order": "WO-1001", "operation": "OP10", "lot": "LOT-A42",
                      "started_at": T0, "ended_at": T0 + 300}],
        "operators": [{"operator": "op-7", "station": "st10", "context_id": "c1", "login_at": T0, "logout_at": None}],
        "materials": [
            {"seq": 5, "at": T0 + 10, "station": "st10", "device": "scanner1", "context_id": "c1", "status": "accepted", "reason_code": "ok",
             "message": "material accepted", "gtin": "09501101020917", "batch": "B-1", "serial": None, "expiry": "2027-12-31", "value": "x"},
            {"seq": 6, "at": T0 + 20, "station": "st10", "device": "scanner1", "context_id": "c1", "status": "rejected",
             "reason_code": "expired", "message": "expired on 2024-01-01", "gtin": "09501101020917", "batch": "OLD", "serial": None,
             "expiry": "2024-01-01", "value": "y"}],
        "tags": [
            {"station": "st10", "device": "press1", "tag": "press_temperature", "unit": "degC", "count": 300, "min": 180.0, "max": 185.0,
             "mean": 182.5, "limits": {"low": None, "high": 183.0}, "out_of_limits": [{"from": T0 + 180, "to": T0 + 300}], "series": series},
            {"station": "st10", "device": "press1", "tag": "hydraulic_pressure", "unit": "bar", "count": 300, "min": 200.0, "max": 220.0,
             "mean": 210.0, "limits": None, "out_of_limits": [],
             "series": [{**p, "min": 200.0, "max": 220.0, "mean": 210.0} for p in series]}],
        "alarms": [{"seq": 9, "at": T0 + 180, "device": "press1", "tag": "press_temperature", "alarm": "high", "state": "raised",
                    "severity": "warning", "limit": 183.0, "value": 183.2}],
        "environment": [],
        "completeness": {"readings": 620, "delivered": 600, "buffered": 20, "dead_lettered": 0, "discarded": 0, "gaps": []},
    }


def test_a_lot_answer_renders_its_tables_and_the_chart_of_the_chosen_tag():
    html = trace.render(lot_answer(), EN, "press1/hydraulic_pressure")
    sections = re.findall(r'<section class="([a-z]+)">', html)
    assert sections == ["journal", "chart", "contexts", "operators", "materials", "tags", "alarms", "completeness"]
    assert html.count('<tr class="s-rejected">') == 1 and html.count('<tr class="s-accepted">') == 1
    assert "expired on 2024-01-01" in html and "WO-1001" in html
    assert 'aria-label="press1/hydraulic_pressure (bar)"' in html and 'class="limit' not in html  # that tag has no limits
    first = trace.render(lot_answer(), EN, None)  # by default the first tag, drawn with its limit
    assert 'aria-label="press1/press_temperature (degC)"' in first and 'class="limit high"' in first
    assert 'class="here">press1/press_temperature<' in first


def test_the_chinese_view_names_its_columns_in_chinese():
    html = trace.render(lot_answer(), ZH, None)
    assert "<h2>物料</h2>" in html and "<th>批号</th>" in html and "<th>工单</th>" in html


async def test_the_trace_routes_refuse_what_the_cli_refuses_and_say_what_the_journal_holds(tmp_path, broker):
    port = free_port()
    path = write_config(tmp_path, broker.port, [], http={"port": port})
    async with InProcess(path) as gw, aiohttp.ClientSession() as s:
        assert (await gw.request(cmd="context", action="start", work_order="WO-1", lot="LOT-1"))["ok"]
        base = f"http://127.0.0.1:{port}"
        async with s.get(f"{base}/trace") as r:
            assert r.status == 200 and '<input name="key"' in await r.text()
        for query in ("kind=nonsense&key=x", "kind=lot&key=", "kind=lot&key=has%20space", "kind=material&key=B&gtin=12x"):
            async with s.get(f"{base}/api/trace?{query}") as r:
                assert r.status == 400, query
        async with s.get(f"{base}/api/trace?kind=lot&key=LOT-NONE") as r:
            missing = r.status, await r.json()
        async with s.get(f"{base}/trace?kind=lot&key=LOT-NONE") as r:
            shown = await r.text()
        async with s.get(f"{base}/api/trace?kind=lot&key=LOT-1") as r:
            found = r.status, await r.json()
    assert missing[0] == 404 and missing[1]["journal"]["from"] <= missing[1]["journal"]["to"]
    assert '<p class="nothing">Nothing found (Journal holds' in shown
    assert found[0] == 200 and [c["work_order"] for c in found[1]["contexts"]] == ["WO-1"]


def test_a_tag_without_numbers_gets_no_chart_and_gaps_are_skipped():
    found = lot_answer()
    recipe = {**found["tags"][0], "tag": "recipe", "unit": None, "limits": None, "out_of_limits": [],
              "series": [{"t": T0, "min": None, "max": None, "mean": None, "count": 5}]}
    found["tags"] = [recipe]
    assert "<svg" not in trace.render(found, EN, None)
    found["tags"][0]["series"].append({"t": T0 + 60, "min": 1.0, "max": 2.0, "mean": 1.5, "count": 5})
    html = trace.render(found, EN, None)
    assert html.count('<circle class="point"') == 1
