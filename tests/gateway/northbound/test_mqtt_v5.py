"""MQTT 5 end to end against mosquitto, and a message the broker refuses (PUBACK reason code 0x87,
not authorized by its ACL): dead-lettered with the reason, never counted as delivered."""

from __future__ import annotations

import sqlite3

import aiomqtt
import orjson

from tests.conftest import Broker, InProcess, Upstream, write_config

BASE = "shopfloor/plant1/assembly/line1"




async def test_mqtt5_end_to_end(tmp_path, broker):
    devices = [{"kind": "synthetic", "name": "press", "rate": 1000, "tags": 2, "limit": 100}]
    path = write_config(tmp_path, broker.port, devices, mqtt={"protocol": "5"})
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
        await up.wait(lambda rs: len({r["seq"] for r in rs if r.get("device") == "press"}) >= 100)
        # The MES side: a command over MQTT (the gateway's v5 subscription) changes the context.
        async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as mes:
            cmd = {"action": "start", "work_order": "WO-2024-0001", "operation": "10"}
            await mes.publish(f"{BASE}/st10/cmd/context", orjson.dumps(cmd), qos=1)
        st = await gw.wait_status(lambda s: s["commands"]["accepted"] == 1)
        assert st["contexts"]["st10"]["work_order"] == "WO-2024-0001"
        assert st["broker"]["state"] == "connected" and st["broker"]["refused"] == 0
    status = [data for topic, data in up.messages if topic.endswith("/_gateway/gw-test/status")]
    assert status[0]["state"] == "online" and status[-1]["state"] == "offline"
    assert any(r.get("type") == "context" and r.get("work_order") == "WO-2024-0001" for r in up.records)


async def test_message_refused_by_broker_acl_is_dead_lettered(tmp_path):
    # mosquitto answers a publish its ACL denies with PUBACK 0x87 (MQTT 5); 3.1.1 has no such code,
    # and mosquitto acknowledges and drops the message silently.
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite shopfloor/#\ntopic deny {BASE}/st10/secret/#\n")
    broker = Broker(tmp_path / "broker", extra=f"acl_file {acl}")
    broker.start()
    try:
        devices = [
            {"kind": "synthetic", "name": "press", "rate": 1000, "tags": 2, "limit": 100},
            {"kind": "synthetic", "name": "secret", "rate": 1000, "tags": 2, "limit": 50},
        ]
        path = write_config(tmp_path, broker.port, devices, mqtt={"protocol": "5", "max_pack": 10})
        async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
            st = await gw.wait_status(lambda s: s["counters"]["captured"] >= 150 and s["buffer"]["rows"] == 0)
            await up.wait(lambda rs: len({r["seq"] for r in rs if r["device"] == "press"}) >= 100)
        assert st["counters"]["dead_lettered"] == 50 and st["counters"]["published"] == 100
        # 50 rows in messages of up to 10 (how many depends on how fetches split them).
        assert 5 <= st["broker"]["refused"] <= 50 and st["broker"]["state"] == "connected"
        assert not [r for r in up.records if r["device"] == "secret"]
    finally:
        broker.stop()
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        dead = db.execute("SELECT sink, json_extract(record, '$.device'), reason FROM dead_letter").fetchall()
    assert len(dead) == 50
    assert {(s, d) for s, d, _ in dead} == {("mqtt", "secret")}
    assert {r for *_, r in dead} == {"the broker refused the message: PUBACK reason code 0x87 (Not authorized)"}


async def test_mqtt311_cannot_see_a_refusal(tmp_path):
    """Why MQTT 5 is recommended: with 3.1.1 mosquitto acknowledges a publish its ACL denies and drops
    it, so the gateway counts it as delivered. (If this starts failing, the broker changed.)"""
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite shopfloor/#\ntopic deny {BASE}/st10/secret/#\n")
    broker = Broker(tmp_path / "broker", extra=f"acl_file {acl}")
    broker.start()
    try:
        devices = [{"kind": "synthetic", "name": "secret", "rate": 1000, "tags": 2, "limit": 20}]
        path = write_config(tmp_path, broker.port, devices, mqtt={"protocol": "3.1.1"})
        async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
            st = await gw.wait_status(lambda s: s["counters"]["published"] == 20)
        assert st["counters"]["dead_lettered"] == 0 and not up.records
    finally:
        broker.stop()


async def test_mqtt5_session_keeps_commands_sent_while_the_gateway_was_away(tmp_path, broker):
    # As with 3.1.1's clean_session=False: the broker queues MES commands for a gateway that is down.
    path = write_config(tmp_path, broker.port, [], mqtt={"protocol": "5"})
    async with InProcess(path) as gw:
        # The first connection creates the session and its subscription.
        await gw.wait_status(lambda s: s["broker"]["state"] == "connected")
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as mes:
        await mes.publish(f"{BASE}/st10/cmd/context", orjson.dumps({"action": "start", "work_order": "WO-7"}), qos=1)
    async with InProcess(path) as gw:
        st = await gw.wait_status(lambda s: s["commands"]["accepted"] == 1)
    assert st["contexts"]["st10"]["work_order"] == "WO-7"
