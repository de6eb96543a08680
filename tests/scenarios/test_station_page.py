"""The station page in a real browser (headless Chromium): the gateway as a real process, a serial
scanner simulator on a real pty, a private mosquitto. Every check waits for what the page shows."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import date, timedelta

import aiohttp
import aiomqtt
import orjson
import pytest

from simulators.broker import free_port, wait_port
from simulators.modbus import ModbusSim
from simulators.scanner import SerialScanner
from tests.conftest import Process, write_config
from tests.helpers import cli
from tests.page_browser import available, browser, wait

# In CI a missing browser is a failed install, not a reason to skip.
pytestmark = pytest.mark.skipif(not available() and not os.environ.get("CI"), reason="needs Debian's chromium and chromium-driver (scripts/setup installs them)")
GTIN = "09501101020917"
COLOURS = {"accepted": "rgb(27, 127, 59)", "warning": "rgb(179, 92, 0)", "rejected": "rgb(198, 40, 40)",
           "duplicate": "rgb(91, 58, 176)", "unassigned": "rgb(85, 101, 110)"}


@pytest.fixture(scope="module")
def driver():
    d = browser()
    yield d
    d.quit()


class Station:
    """A gateway process with one serial scanner (and `devices`), its HTTP server on a free port."""

    def __init__(self, tmp_path, broker, devices=(), http=None, **page):
        (tmp_path / "bom.csv").write_text(f"work_order,code\nWO-2024-0042,{GTIN}\n")
        self.sim = SerialScanner(tmp_path / "scanner0")
        self.port = free_port()
        scan = {"bom_file": str(tmp_path / "bom.csv"), "expiry_warn_days": 30}
        station = {"id": "gw-test", "site": "plant1", "area": "assembly", "line": "line1",
                   "stations": [{"name": "st10", "description": "final assembly", "scan": scan}]}
        dev = {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp_path / "scanner0"), "feedback": "honeywell",
               "partial_timeout": 0.3, "backoff_initial": 0.05, "backoff_max": 0.2}
        extra = {"page": page} if page else {}
        self.path = write_config(tmp_path, broker.port, [dev, *devices], gateway=station, http={"port": self.port, **(http or {})}, **extra)
        self.gw = Process(self.path, tmp_path / "gateway.log")
        self.url = f"http://127.0.0.1:{self.port}/station/st10"

    async def start(self) -> None:
        self.gw.start()
        await asyncio.to_thread(wait_port, self.port, 30)

    async def __aenter__(self) -> Station:
        self.sim.plug()
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        if self.gw.proc.poll() is None:
            assert self.gw.terminate() == 0
        self.sim.unplug()


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def newest(driver) -> dict | None:
    return js(driver, """
        const tr = document.querySelector('#scans tr');
        if (!tr) return null;
        return {id: +tr.dataset.id, status: tr.dataset.status, reason: tr.dataset.reason, shown: +tr.dataset.shown / 1000,
                badge: tr.querySelector('.badge').textContent, why: tr.querySelector('.why').textContent,
                colour: getComputedStyle(tr.querySelector('.badge')).backgroundColor};""")


async def scanned(driver, sim: SerialScanner, text: str) -> dict:
    """Scan `text` and return the page's newest row once it is that scan."""
    before = (newest(driver) or {}).get("id", 0)
    sent = time.time()
    sim.scan(text)
    await wait(driver, lambda d: (newest(d) or {}).get("id", 0) > before, what=f"the scan {text!r} on the page")
    row = newest(driver)
    row["latency"] = row["shown"] - sent
    return row


async def connected(driver, station: Station) -> None:
    await asyncio.to_thread(driver.get, station.url)
    await wait(driver, lambda d: js(d, "return document.querySelector('#devices li[data-state=connected]') !== null"),
               what="the scanner shown connected")


def header(driver) -> list[str]:
    return [driver.find_element("id", k).text for k in ("work_order", "operation", "lot", "operators")]


async def test_scans_appear_within_a_second_in_their_colour_with_their_reason(tmp_path, broker, driver):
    soon = (date.today() + timedelta(days=10)).strftime("%y%m%d")
    async with Station(tmp_path, broker) as st:
        await connected(driver, st)
        assert js(driver, "return document.getElementById('no-scans').hidden") is False
        rows = [await scanned(driver, st.sim, text) for text in (
            f"]C101{GTIN}10LOT-A42",  # before any traveler
            "]C0WO-2024-0042",
            f"]C101{GTIN}10LOT-A42",
            f"]C101{GTIN}10LOT-A42",  # the same label again
            "]E05901234123457",  # not in the BOM
            f"]C101{GTIN}17{soon}10LOT-B7",  # expires within the warning days
        )]
    assert [r["status"] for r in rows] == ["unassigned", "accepted", "accepted", "duplicate", "rejected", "warning"]
    assert [r["reason"] for r in rows] == ["no_active_order", "work_order_started", "ok", "duplicate", "not_in_bom", "expires_soon"]
    for r in rows:
        assert r["latency"] < 1.0, r
        assert r["colour"] == COLOURS[r["status"]] and r["badge"] == r["status"]
    assert "no active work order" in rows[0]["why"] and "not in the bill of materials" in rows[4]["why"]
    assert "expires on" in rows[5]["why"]
    assert header(driver)[0] == "WO-2024-0042"


async def test_the_last_twenty_scans_are_kept_newest_first(tmp_path, broker, driver):
    async with Station(tmp_path, broker) as st:
        await connected(driver, st)
        for i in range(22):
            await scanned(driver, st.sim, f"]E0{i:013d}")
        await asyncio.to_thread(driver.refresh)  # what a browser that comes later sees: the gateway's memory
        await wait(driver, lambda d: len(d.find_elements("css selector", "#scans tr")) == 20, what="20 rows after a reload")
        codes = [e.get_attribute("data-value") for e in driver.find_elements("css selector", "#scans td.code")]
    assert codes == [f"]E0{i:013d}" for i in range(21, 1, -1)]


async def test_a_context_change_from_the_cli_or_the_mes_updates_the_header(tmp_path, broker, driver):
    async with Station(tmp_path, broker) as st:
        await connected(driver, st)
        assert header(driver) == ["–", "–", "–", "–"]
        assert driver.find_element("id", "idle").is_displayed()
        done = await asyncio.to_thread(cli, "context", "set", "-c", str(st.path), "--work-order", "WO-CLI-7", "--operation", "OP20",
                                       "--lot", "LOT-C3", "--operator", "op-7", "--operator", "op-9")
        assert done.returncode == 0, done.stderr
        await wait(driver, lambda d: header(d) == ["WO-CLI-7", "OP20", "LOT-C3", "op-7, op-9"], what="the new context in the header")
        assert not driver.find_element("id", "idle").is_displayed()
        done = await asyncio.to_thread(cli, "context", "clear", "-c", str(st.path))
        assert done.returncode == 0, done.stderr
        await wait(driver, lambda d: d.find_element("id", "idle").is_displayed() and header(d)[0] == "–", what="the idle station")
        async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
            order = {"id": "mes-1", "action": "start", "work_order": "WO-MES-3", "lot": "LOT-M1", "operators": ["op-2"]}
            await mes.publish("shopfloor/plant1/assembly/line1/st10/cmd/context", orjson.dumps(order), qos=1)
        await wait(driver, lambda d: header(d) == ["WO-MES-3", "–", "LOT-M1", "op-2"], what="the MES's work order in the header")


async def test_a_banner_shows_while_the_gateway_is_gone_and_the_page_comes_back(tmp_path, broker, driver):
    async with Station(tmp_path, broker) as st:
        await connected(driver, st)
        banner = driver.find_element("id", "lost")
        assert not banner.is_displayed()
        assert await asyncio.to_thread(st.gw.terminate) == 0
        await wait(driver, lambda d: banner.is_displayed(), what="the lost-connection banner")
        assert "lost" in banner.text
        await st.start()
        await wait(driver, lambda d: not banner.is_displayed(), timeout=15, what="the banner to go once the gateway is back")
        row = await scanned(driver, st.sim, "]C0WO-2024-0042")  # live again
        assert row["status"] == "accepted"


async def test_the_broker_and_the_buffer_as_the_gateway_sees_them(tmp_path, broker, driver):
    def sink(d):
        return js(d, "const li = document.querySelector('#link li[data-sink]'); return li && [li.dataset.state, li.textContent];")

    def rows(d):
        return int(js(d, "return document.getElementById('buffer').dataset.rows") or -1)

    async with Station(tmp_path, broker) as st:
        await connected(driver, st)
        await wait(driver, lambda d: (sink(d) or [""])[0] == "connected", what="the broker connected")
        assert sink(driver)[1] == "Broker: connected"
        broker.stop()
        await wait(driver, lambda d: (sink(d) or [""])[0] not in ("", "connected"), what="the broker shown lost")
        for text in ("]C0WO-2024-0042", f"]C101{GTIN}"):
            await scanned(driver, st.sim, text)
        await wait(driver, lambda d: rows(d) >= 3, what="the records waiting in the buffer")  # two scans and the context event
        broker.start()
        await wait(driver, lambda d: (sink(d) or [""])[0] == "connected" and rows(d) == 0, timeout=20, what="the buffer emptied")


async def test_a_token_given_once_opens_the_live_page(tmp_path, broker, driver):
    (tmp_path / "token").write_text("panel-token-5\n")
    async with Station(tmp_path, broker, http={"token_file": str(tmp_path / "token")}) as st:
        await asyncio.to_thread(driver.delete_all_cookies)
        await asyncio.to_thread(driver.get, st.url)
        assert "token is required" in driver.find_element("tag name", "body").text
        await asyncio.to_thread(driver.get, st.url + "?token=panel-token-5")
        assert driver.current_url == st.url  # the token left the address bar
        await wait(driver, lambda d: js(d, "return document.querySelector('#devices li[data-state=connected]') !== null"),
                   what="the live page, its event stream opened with the cookie")
        row = await scanned(driver, st.sim, "]C0WO-2024-0042")
        await asyncio.to_thread(driver.delete_all_cookies)
    assert row["status"] == "accepted"


async def test_labels_in_simplified_chinese(tmp_path, broker, driver):
    async with Station(tmp_path, broker, language="zh-CN") as st:
        await connected(driver, st)
        row = await scanned(driver, st.sim, f"]C101{GTIN}")
        labels = [e.text for e in driver.find_elements("css selector", "header .label")]
        assert driver.find_element("tag name", "html").get_attribute("lang") == "zh-CN"
    assert labels == ["工单", "工序", "批次", "操作员"]
    assert row["badge"] == "未分配" and row["why"].startswith("无进行中的工单")


async def test_a_lot_traced_shows_its_materials_and_a_chart_with_the_limit(tmp_path, broker, driver):
    """The real thing: the gateway captures a lot onto its journal, the page asks the trace queries."""
    async with ModbusSim(port=0) as plc:
        await plc.set("press_temperature", 184.5)  # above the high limit all along
        press = {"kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": plc.port, "backoff_max": 0.5,
                 "polls": [{"interval": 0.2, "tags": [{"name": "press_temperature", "address": 0, "type": "float32", "unit": "degC",
                                                       "limits": {"high": 183}}]}]}
        async with Station(tmp_path, broker, [press]) as st:
            await connected(driver, st)
            done = await asyncio.to_thread(cli, "context", "set", "-c", str(st.path), "--work-order", "WO-2024-0042", "--lot", "LOT-T1")
            assert done.returncode == 0, done.stderr
            for text in (f"]C101{GTIN}10B-7", "]E05901234123457"):
                await scanned(driver, st.sim, text)
            await wait(driver, lambda d: js(d, "return document.querySelector('#alarms li') !== null"), what="the high alarm")
            # A minute's aggregate is written once the minute is over, or at a stop: restart, then ask.
            assert await asyncio.to_thread(st.gw.terminate) == 0
            await st.start()
            await asyncio.to_thread(driver.get, f"http://127.0.0.1:{st.port}/trace")
            driver.find_element("name", "key").send_keys("LOT-T1\n")
            await wait(driver, lambda d: len(d.find_elements("css selector", "section.materials tbody tr")) == 2, what="the lot's materials")
            statuses = [e.get_attribute("class") for e in driver.find_elements("css selector", "section.materials tbody tr")]
            chart = driver.find_element("css selector", "section.chart svg")
            limit = chart.find_elements("css selector", "line.limit.high")
            label = chart.get_attribute("aria-label")
            tags = [e.text for e in driver.find_elements("css selector", "section.tags tbody td:nth-child(3)")]
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{st.port}/api/trace?kind=lot&key=LOT-T1") as r:
                    api = await r.json()
                async with s.get(f"http://127.0.0.1:{st.port}/api/trace?kind=lot&key=LOT-NONE") as r:
                    missing = r.status, await r.json()
    assert statuses == ["s-accepted", "s-rejected"]
    assert label == "press1/press_temperature (degC)" and len(limit) == 1
    assert tags == ["press_temperature"]
    assert api["query"] == {"kind": "lot", "key": "LOT-T1"} and [m["status"] for m in api["materials"]] == ["accepted", "rejected"]
    assert api["tags"][0]["limits"]["high"] == 183 and api["tags"][0]["series"]
    assert missing[0] == 404 and missing[1]["journal"]["from"] <= missing[1]["journal"]["to"]
