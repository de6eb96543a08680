"""Two northbound sinks on one capture log: each has its own cursor, and one that is down slows
neither capture nor the other; when it is back it gets everything it missed."""

from __future__ import annotations

import yaml

from tests.conftest import Broker, InProcess, Upstream, write_config

OVEN = {"kind": "synthetic", "name": "oven", "rate": 200, "tags": 2}


def two_sinks(tmp_path, a: Broker, b: Broker):
    path = write_config(tmp_path, a.port, [OVEN])
    doc = yaml.safe_load(path.read_text())
    doc.pop("mqtt")
    doc["northbound"] = [
        {"kind": "mqtt", "name": "plant", "host": "127.0.0.1", "port": a.port},
        {"kind": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": b.port, "topic_prefix": "cloud", "reconnect_max": 0.2},
    ]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def test_a_sink_that_is_down_slows_neither_capture_nor_the_other_sink(tmp_path):
    with Broker(tmp_path / "a") as a, Broker(tmp_path / "b") as b:
        path = two_sinks(tmp_path, a, b)
        async with Upstream(a.port, "shopfloor/#") as plant, Upstream(b.port, "cloud/#") as cloud, InProcess(path) as gw:
            await plant.wait(lambda rs: len(rs) >= 50)
            await cloud.wait(lambda rs: len(rs) >= 50)
            b.stop()
            st = await gw.wait_status(lambda s: s["sinks"]["cloud"]["state"] == "disconnected")
            base = st["counters"]["captured"]
            seen = len(plant.records)
            # Capture and the plant sink go on while the cloud broker is away; the cloud's cursor waits.
            st = await gw.wait_status(lambda s: s["counters"]["captured"] > base + 400 and s["sinks"]["cloud"]["backlog"] > 300)
            await plant.wait(lambda rs: len(rs) > seen + 300)
            assert st["sinks"]["plant"]["backlog"] < st["sinks"]["cloud"]["backlog"]
            b.start()
            await gw.wait_status(lambda s: s["sinks"]["cloud"]["state"] == "connected")
            st = await gw.status()
            target = st["counters"]["captured"]
            await cloud.wait(lambda rs: len({r["seq"] for r in rs}) >= target - 400)
        # After the stop both have everything captured, each under the same seqs.
        plant_seqs = {r["seq"] for r in plant.records}
        cloud_seqs = {r["seq"] for r in cloud.records}
        assert plant_seqs == cloud_seqs
        assert len(plant_seqs) == gw.gw.log.stats.counters["captured"]
        assert {r["_topic"].split("/")[0] for r in cloud.records} == {"cloud"}
