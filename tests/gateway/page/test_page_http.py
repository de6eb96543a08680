"""The station page's routes on the gateway's real HTTP server: a real gateway in-process, a
serial scanner simulator on a real pty, and an HTTP client reading the event stream."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
import yaml

from gateway.ops.http import COOKIE
from simulators.broker import free_port
from simulators.scanner import SerialScanner
from tests.conftest import InProcess, write_config

GTIN = "09501101020917"


def setup(tmp_path, broker, **http):
    bom = tmp_path / "bom.csv"
    bom.write_text(f"work_order,code\nWO-2024-0042,{GTIN}\n")
    sim = SerialScanner(tmp_path / "scanner0")
    sim.plug()
    port = free_port()
    station = {"id": "gw-test", "site": "plant1", "area": "assembly", "line": "line1",
               "stations": [{"name": "st10", "description": "final assembly", "scan": {"bom_file": str(bom)}}]}
    dev = {"kind": "scanner_serial", "name": "scanner1", "port": str(tmp_path / "scanner0"), "feedback": "honeywell",
           "partial_timeout": 0.3, "backoff_initial": 0.05, "backoff_max": 0.2}
    path = write_config(tmp_path, broker.port, [dev], gateway=station, http={"port": port, **http})
    return sim, port, path


async def events(resp: aiohttp.ClientResponse):
    """(event, data) pairs of a server-sent event stream."""
    name = None
    async for line in resp.content:
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, orjson.loads(line[6:])


async def until(stream, event: str, predicate=lambda d: True):
    async with asyncio.timeout(10):
        async for name, data in stream:
            if name == event and predicate(data):
                return data
    raise AssertionError(f"the stream ended before a {event} event")


async def test_a_scan_reaches_the_event_stream_with_its_outcome(tmp_path, broker):
    sim, port, path = setup(tmp_path, broker)
    async with InProcess(path), aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/api/events?station=st10") as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            stream = events(r)
            snap = await until(stream, "snapshot")
            assert snap["context"]["state"] == "idle" and snap["scans"] == []
            await until(stream, "health", lambda h: [d["state"] for d in h["devices"]] == ["connected"])
            sim.scan(f"]C101{GTIN}")
            first = await until(stream, "scan")
            assert (first["status"], first["reason_code"], first["device"]) == ("unassigned", "no_active_order", "scanner1")
            sim.scan("]C0WO-2024-0042")
            ctx = await until(stream, "context")
            assert (ctx["state"], ctx["work_order"]) == ("active", "WO-2024-0042")
            sim.scan(f"]C101{GTIN}")
            ok = await until(stream, "scan", lambda d: d["id"] > first["id"] + 1)
            assert (ok["status"], ok["work_order"], ok["value"]) == ("accepted", "WO-2024-0042", f"]C101{GTIN}")
        async with s.get(f"http://127.0.0.1:{port}/api/state?station=st10") as r:
            state = await r.json()
    sim.unplug()
    assert [e["status"] for e in state["scans"]] == ["accepted", "accepted", "unassigned"]  # newest first
    assert state["context"]["work_order"] == "WO-2024-0042"


async def test_the_page_is_served_and_read_only(tmp_path, broker):
    sim, port, path = setup(tmp_path, broker)
    async with InProcess(path), aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, "/station/st10")
        async with s.get(f"http://127.0.0.1:{port}/station/st10") as r:
            text = await r.text()
            assert r.status == 200 and "final assembly" in text and "Work order" in text
        async with s.get(f"http://127.0.0.1:{port}/static/station.js") as r:
            assert r.status == 200 and "EventSource" in await r.text()
        async with s.get(f"http://127.0.0.1:{port}/station/nowhere") as r:
            assert r.status == 404
        for url in ("/", "/station/st10", "/api/state", "/api/events", "/api/trace", "/trace", "/metrics"):
            async with s.post(f"http://127.0.0.1:{port}{url}") as r:
                assert r.status == 405, url
    sim.unplug()


async def test_a_token_opens_the_page_once_and_a_cookie_keeps_it_open(tmp_path, broker):
    (tmp_path / "token").write_text("page-token-1\n")
    sim, port, path = setup(tmp_path, broker, token_file=str(tmp_path / "token"))
    base = f"http://127.0.0.1:{port}"
    async with InProcess(path):
        async with aiohttp.ClientSession() as s:
            for url in ("/station/st10", "/api/state", "/api/events", "/static/station.js", "/metrics"):
                async with s.get(base + url) as r:
                    assert r.status == 401, url
            async with s.get(f"{base}/station/st10?token=wrong", allow_redirects=False) as r:
                assert r.status == 401
            async with s.get(f"{base}/station/st10?token=page-token-1&x=1", allow_redirects=False) as r:
                assert (r.status, r.headers["Location"]) == (303, "/station/st10?x=1")
                cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "page-token-1" not in cookie
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(f"{base}/station/st10?token=page-token-1") as r:
                assert r.status == 200 and str(r.url) == f"{base}/station/st10"
            async with s.get(f"{base}/api/state") as r:
                assert r.status == 200
            assert COOKIE in {c.key for c in s.cookie_jar}
        async with aiohttp.ClientSession() as s, s.get(f"{base}/api/state", headers={"Authorization": "Bearer page-token-1"}) as r:
            assert r.status == 200
    sim.unplug()


@pytest.mark.parametrize("language, word", [("en", "Work order"), ("zh-CN", "工单")])
async def test_labels_follow_the_configured_language(tmp_path, broker, language, word):
    sim, port, path = setup(tmp_path, broker)
    path.write_text(path.read_text() + f"page:\n  language: {language}\n")
    async with InProcess(path), aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/station/st10") as r:
        text = await r.text()
    sim.unplug()
    assert f'lang="{language}"' in text and word in text


async def test_a_reload_changes_the_language(tmp_path, broker):
    sim, port, path = setup(tmp_path, broker)
    async with InProcess(path) as gw, aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/station/st10") as r:
            assert "Work order" in await r.text()
        path.write_text(path.read_text() + "page:\n  language: zh-CN\n")
        assert (await gw.request(cmd="reload"))["ok"]
        async with s.get(f"http://127.0.0.1:{port}/station/st10") as r:
            assert "工单" in await r.text()
    sim.unplug()


async def test_a_stop_ends_the_event_streams_at_once(tmp_path, broker):
    sim, port, path = setup(tmp_path, broker)
    gw = await InProcess(path).__aenter__()
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/api/events") as r:
        stream = events(r)
        await until(stream, "snapshot")
        started = loop.time()
        gw.stop.set()
        assert await asyncio.wait_for(gw.task, 15) == 0
        took = loop.time() - started
        assert [e async for e in stream] == []  # the stream was ended by the server
    sim.unplug()
    assert took < 1.0, took


async def test_each_station_has_its_page_and_hears_only_its_own_scans(tmp_path, broker):
    sim, port, path = setup(tmp_path, broker)
    doc = yaml.safe_load(path.read_text())
    doc["gateway"]["stations"].append({"name": "st20", "description": "packing"})
    doc["devices"][0]["station"] = "st10"
    path.write_text(yaml.safe_dump(doc))
    base = f"http://127.0.0.1:{port}"
    async with InProcess(path), aiohttp.ClientSession() as s:
        async with s.get(f"{base}/station/st20") as r:
            page = await r.text()
        assert 'href="/station/st10"' in page and 'class=here>st20<' in page and "packing" in page
        async with s.get(f"{base}/api/events?station=st20") as quiet, s.get(f"{base}/api/events?station=st10") as busy:
            other, mine = events(quiet), events(busy)
            assert (await until(other, "health"))["devices"] == []
            await until(mine, "health", lambda h: [d["state"] for d in h["devices"]] == ["connected"])
            sim.scan("]C0WO-2024-0042")
            got = {}
            async for name, data in _take(mine, 10):
                got[name] = data
                if {"scan", "context"} <= set(got):  # the context record comes first: the scan is stamped with it
                    break
            assert got["scan"]["reason_code"] == "work_order_started" and got["context"]["work_order"] == "WO-2024-0042"
            # st20 hears its health tick, and nothing of st10's scan or context
            assert [name async for name, _ in _take(other, 2)] == ["health", "health"]
        async with s.get(f"{base}/api/state?station=st20") as r:
            assert (await r.json())["scans"] == []
    sim.unplug()


async def _take(stream, n: int):
    async with asyncio.timeout(10):
        for _ in range(n):
            yield await anext(stream)
