"""The MQTT sink's own containment: a bug in a session costs a reconnect, never the capture."""

from __future__ import annotations

from gateway.northbound.mqtt import JsonSink
from tests.conftest import InProcess, Upstream, write_config

OVEN = {"kind": "synthetic", "name": "oven", "rate": 100, "tags": 1}


async def test_an_unexpected_error_in_a_session_reconnects_and_loses_nothing(tmp_path, broker, monkeypatch):
    real = JsonSink._session
    calls = []

    async def session(self, client):
        calls.append(1)
        if len(calls) <= 2:
            raise ZeroDivisionError("a bug nobody listed")
        await real(self, client)

    monkeypatch.setattr(JsonSink, "_session", session)
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(write_config(tmp_path, broker.port, [OVEN])) as gw:
        await up.wait(lambda rs: len(rs) >= 50)
        st = await gw.status()
        assert st["broker"]["state"] == "connected" and len(calls) == 3
    seqs = [r["seq"] for r in up.records]
    assert seqs == sorted(seqs) and seqs[-1] - seqs[0] + 1 == len(set(seqs))  # from the first reading on, no gap
