"""The page's parts on their own: the scan memory, the fan-out to browsers, labels, the chart."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from gateway.page import chart
from gateway.page.board import Board
from gateway.page.hub import Hub, frame
from gateway.page.labels import EN, REASONS_ZH, ZH


def scan(station: str, n: int, status: str = "accepted") -> dict:
    return {"type": "scan", "station": station, "device": "scanner1", "ts": datetime.fromtimestamp(1764000000 + n, UTC),
            "value": f"CODE-{n}", "status": status, "reason_code": "ok", "message": "material accepted"}


def test_the_board_keeps_the_last_twenty_scans_per_station_newest_first():
    b = Board()
    for n in range(25):
        b.add(scan("st10", n))
    b.add(scan("st20", 99, "rejected"))
    assert [e["value"] for e in b.recent("st10")] == [f"CODE-{n}" for n in range(24, 4, -1)]
    assert [e["status"] for e in b.recent("st20")] == ["rejected"] and b.recent("st30") == []
    assert b.recent("st10")[0]["ts"] == 1764000024.0


def test_an_entry_has_a_known_status_and_a_short_value():
    b = Board()
    e = b.add({**scan("st10", 1), "status": None, "quality": "bad", "value": "x" * 5000})
    assert e["status"] == "rejected" and len(e["value"]) == 120


async def test_a_slow_client_is_dropped_and_publishing_never_waits():
    hub = Hub()
    slow, quick, other = hub.join("st10", size=4), hub.join("st10", size=4), hub.join("st20", size=4)
    for n in range(3):
        hub.publish("st10", frame("scan", b'{"n": %d}' % n))
    assert [await quick.next() for _ in range(3)] == [frame("scan", b'{"n": %d}' % n) for n in range(3)]
    for n in range(3, 10):  # nobody reads `slow` any more; `quick` keeps up
        hub.publish("st10", frame("scan", b'{"n": %d}' % n))
        assert await asyncio.wait_for(quick.next(), 1) == frame("scan", b'{"n": %d}' % n)
    assert slow.dropped and slow not in hub.clients and hub.dropped == 1
    assert await slow.next() is None  # its stream ends
    assert quick in hub.clients and other.queue.empty()


def test_both_languages_name_the_same_things():
    assert set(EN) == set(ZH)
    assert all(re.search(r"[\u4e00-\u9fff]", v) for k, v in ZH.items() if k not in ("gtin",))
    assert {"ok", "not_in_bom", "expired", "duplicate", "no_active_order", "mes_authoritative"} <= set(REASONS_ZH)


def test_ticks_are_round_and_cover_the_range():
    assert chart.ticks(178.3, 186.9) == [180, 182, 184, 186]
    assert chart.ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_the_chart_draws_the_band_the_mean_the_limits_and_the_excursions():
    t0 = 1764000000.0
    tag = {"device": "press1", "tag": "press_temperature", "unit": "degC", "limits": {"low": None, "high": 183.0},
           "out_of_limits": [{"from": t0 + 120, "to": t0 + 150}],
           "series": [{"t": t0 + 60 * i, "min": 179.0 + i, "max": 181.0 + i * 1.5, "mean": 180.0 + i, "count": 60} for i in range(4)]}
    svg = chart.svg(tag, EN)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="limit high"') == 1 and 'class="limit low"' not in svg
    assert "Limit high 183" in svg and 'aria-label="press1/press_temperature (degC)"' in svg
    assert len(re.findall(r'<polyline class="mean" points="([^"]+)"', svg)[0].split()) == 4
    assert svg.count('class="excursion"') == 1
    high_y = float(re.search(r'class="limit high" x1="\d+" x2="\d+" y1="([\d.]+)"', svg).group(1))
    top_of_band = min(float(p.split(",")[1]) for p in re.search(r'class="band" points="([^"]+)"', svg).group(1).split())
    assert top_of_band < high_y  # the last minute's max (185.5) is drawn above the limit (183)
    assert chart.svg({**tag, "series": []}, EN) == ""
