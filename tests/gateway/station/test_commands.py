"""MES commands: the strict schema, refusals with a reason on the reply topic, retained commands,
signed commands, commands switched off, and the command id as the actor of the change."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
import subprocess
import time

import aiomqtt
import orjson
import pytest
from structlog.testing import capture_logs

from gateway.station import commands, ids
from gateway.station.commands import Commands, Guard, Incoming
from gateway.station.context import MAX_OPERATORS
from tests.conftest import ROOT, InProcess, Upstream, write_config

BASE = "shopfloor/plant1/assembly/line1"
CMD = f"{BASE}/st10/cmd/context"
REPLY = f"{BASE}/_gateway/gw-test/reply"
KEY_PATH = "/etc/mes/gateway-commands.key"  # as in the README
KEY = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d0f"


def replies(up: Upstream) -> list[dict]:
    return [p for t, p in up.messages if t.endswith("/reply")]


async def connected(gw: InProcess) -> None:
    """Subscribed to its commands: the publisher says connected only once the session is complete."""
    await gw.wait_status(lambda s: s["broker"]["state"] == "connected")


async def wait_replies(up: Upstream, n: int) -> list[dict]:
    async with asyncio.timeout(20):
        while len(replies(up)) < n:
            await asyncio.sleep(0.02)
    return replies(up)


# --- the schema, without a broker ---------------------------------------------------------------


class Recorder:
    def __init__(self):
        self.changes = []

    async def __call__(self, station, ch):
        self.changes.append((station, ch))
        return {"ok": True, "context": {"context_id": "c1", "version": len(self.changes)}}


def handler(guard: Guard | None = None, enabled: bool = True) -> tuple[Commands, Recorder]:
    rec = Recorder()
    return Commands(BASE, "gw-test", ["st10"], rec, guard, enabled), rec


async def decide(cmds: Commands, payload, topic: str = CMD, **kw) -> dict:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    reply = await cmds.on_message(Incoming(topic, body, **kw))
    return orjson.loads(reply.payload)


BAD = [
    ({"action": "start", "work_order": "WO-1", "priority": 1}, "invalid", "priority: unknown field"),
    ({"action": "start", "work_order": "WO-1", "extra": {"bom": 5}}, "invalid", "extra.bom: Input should be a valid list"),
    ({"action": "start", "work_order": "WO-1", "extra": {"bom": [5]}}, "invalid", "extra.bom.0: Input should be a valid string"),
    ({"action": "start", "work_order": "WO-1", "extra": {"colour": "red"}}, "invalid", "extra.colour: unknown field"),
    ({"action": "start", "work_order": "WO-1", "extra": {"blocked_lots": ["L"] * 1001}}, "invalid", "extra.blocked_lots: List should have at most 1000 items"),
    ({"action": "start", "work_order": 42}, "invalid", "work_order: Input should be a valid string"),
    ({"action": "start", "work_order": "WO 1"}, "invalid", "work_order: contains ' '"),
    ({"action": "start", "work_order": "WO-1", "operators": "op1"}, "invalid", "operators: Input should be a valid list"),
    ({"action": "login", "operators": [f"op{i}" for i in range(MAX_OPERATORS + 1)]}, "invalid", f"operators: List should have at most {MAX_OPERATORS} items"),
    ({"action": "end", "reason": "x" * 201}, "invalid", "reason: String should have at most 200 characters"),
    ({"action": "end", "reason": "a\x1bb"}, "invalid", "reason: contains a control character"),
    ({"action": "start", "work_order": "WO-1", "ts": True}, "invalid", "ts: Input should be a valid number"),
    ({"action": "launch"}, "invalid", "action: Input should be"),
    ({"work_order": "WO-1"}, "invalid", "action: Field required"),
    ({"action": "start", "work_order": "WO-1", "actor": "cli:uid=0(root)"}, "invalid", "actor: unknown field"),
    (["start"], "invalid", "a command is a JSON object"),
    (b"{not json", "not_json", "not JSON"),
    ({"action": "start", "work_order": "W" * 300_000}, "too_large", "command of 300"),
]


@pytest.mark.parametrize("payload,reason,error", BAD, ids=[b[2][:40] for b in BAD])
async def test_a_command_not_of_the_schema_is_refused_and_applies_nothing(payload, reason, error):
    cmds, rec = handler()
    with capture_logs() as logs:
        out = await decide(cmds, payload)
    assert (out["ok"], out["reason"]) == (False, reason)
    assert out["error"].startswith(error), out["error"]
    assert len(out["error"]) <= commands.MAX_ERROR
    assert rec.changes == []
    assert cmds.to_json()["reasons"] == {reason: 1}
    assert [e["event"] for e in logs] == ["command_rejected"]


async def test_a_command_of_the_schema_becomes_one_change():
    cmds, rec = handler()
    cmd = {"id": "c-1", "ts": time.time(), "action": "set", "work_order": "WO-1", "operation": "OP10", "lot": "L-1",
           "operators": ["op7"], "extra": {"bom": ["09501101020917"], "blocked_lots": ["09501101020917,L-9"]}, "reason": "shift start"}
    out = await decide(cmds, cmd)
    assert out["ok"] and out["id"] == "c-1" and out["station"] == "st10" and out["context_version"] == 1
    ((station, ch),) = rec.changes
    assert (station, ch.action, ch.source, ch.work_order, ch.operators) == ("st10", "start", "mes", "WO-1", ("op7",))
    assert ch.extra == {"bom": ["09501101020917"], "blocked_lots": ["09501101020917,L-9"]}
    assert ch.actor == "mes:c-1/unsigned"


async def test_a_command_without_an_id_is_named_by_its_digest():
    cmds, rec = handler()
    body = orjson.dumps({"action": "end"})
    await decide(cmds, body)
    assert rec.changes[0][1].actor == f"mes:sha256:{hashlib.sha256(body).hexdigest()[:16]}/unsigned"


async def test_topics_of_no_station_of_this_gateway_are_refused():
    cmds, rec = handler()
    for topic in (f"{BASE}/st99/cmd/context", f"{BASE}/st10/cmd/other", "shopfloor/plant1/assembly/line2/st10/cmd/context"):
        out = await decide(cmds, {"action": "end"}, topic)
        assert (out["reason"], out["station"]) == ("unknown_station", None)
    assert rec.changes == []


async def test_an_empty_payload_clears_a_retained_command_and_is_no_command():
    cmds, rec = handler()
    assert await cmds.on_message(Incoming(CMD, b"", retain=True)) is None
    assert cmds.to_json()["rejected"] == 0 and rec.changes == []


async def test_a_retained_command_is_refused_every_time_and_logged_once():
    cmds, rec = handler()
    with capture_logs() as logs:
        for _ in range(3):  # as after each reconnect
            out = await decide(cmds, {"action": "start", "work_order": "WO-1"}, retain=True)
            assert out["reason"] == "retained"
    assert rec.changes == [] and cmds.to_json()["reasons"] == {"retained": 3}
    assert [e["event"] for e in logs] == ["command_rejected"]


async def test_replies_go_below_the_gateways_own_topics_only():
    cmds, _ = handler()
    own = f"{BASE}/_gateway/gw-test/reply/mes-7"
    reply = await cmds.on_message(Incoming(CMD, b'{"action":"end"}', response_topic=own, correlation=b"\x01\x02"))
    assert (reply.topic, reply.correlation) == (own, b"\x01\x02")
    reply = await cmds.on_message(Incoming(CMD, b'{"action":"end"}', response_topic="elsewhere/anything"))
    assert reply.topic == REPLY


def test_the_fuzzed_schema_lets_only_bounded_identifiers_through():
    """Seeded: mutated commands never raise, and whatever is applied is made of valid identifiers.
    FUZZ_EXAMPLES=100000 for a longer run."""
    rnd = random.Random(int(os.environ.get("FUZZ_SEED", "7")))
    values = [None, True, 0, -1, 1.5, float("1e308"), "", "WO-1", " ", "x" * 65, "é", "a\nb", [], ["L-1"], [5], {}, {"bom": 5}, {"bom": ["A"]}]
    keys = ["action", "work_order", "operation", "lot", "operators", "extra", "reason", "id", "ts", "station", "actor"]

    async def run():
        cmds, rec = handler()
        for _ in range(int(os.environ.get("FUZZ_EXAMPLES", "2000"))):
            cmd = {"action": rnd.choice(["start", "update", "end", "login", "logout", "boom"])}
            for k in rnd.sample(keys, rnd.randint(0, 4)):
                cmd[k] = rnd.choice(values)
            body = orjson.dumps(cmd) if rnd.random() < 0.9 else rnd.randbytes(rnd.randint(1, 64))
            reply = await cmds.on_message(Incoming(CMD, body))
            assert reply is not None
        for _, ch in rec.changes:
            for name in ("work_order", "operation", "lot"):
                assert getattr(ch, name) is None or ids.problem(getattr(ch, name)) is None
            assert ch.operators is None or all(ids.problem(o) is None for o in ch.operators)
            assert ch.extra is None or (set(ch.extra) <= {"bom", "blocked_lots"} and all(isinstance(v, list) for v in ch.extra.values()))
        assert cmds.accepted + cmds.rejected == int(os.environ.get("FUZZ_EXAMPLES", "2000"))

    asyncio.run(run())


# --- signatures ---------------------------------------------------------------------------------


def signed(cmd: dict, key: str = KEY) -> bytes:
    return commands.sign(key.encode(), orjson.dumps(cmd))


async def test_signed_commands_unsigned_bad_stale_and_replayed_are_refused():
    now = [1_800_000_000.0]
    cmds, rec = handler(Guard(KEY.encode(), 60, clock=lambda: now[0]))
    good = {"id": "c-1", "ts": now[0], "action": "start", "work_order": "WO-1"}
    assert (await decide(cmds, orjson.dumps(good)))["reason"] == "unsigned"
    assert (await decide(cmds, signed(good, "k" * 64)))["reason"] == "bad_signature"
    tampered = signed(good).replace(b"WO-1", b"WO-2")
    assert (await decide(cmds, tampered))["reason"] == "bad_signature"
    assert (await decide(cmds, signed({**good, "ts": now[0] - 61})))["reason"] == "stale"
    assert (await decide(cmds, signed({**good, "ts": now[0] + 61})))["reason"] == "stale"
    assert (await decide(cmds, signed({k: v for k, v in good.items() if k != "id"})))["reason"] == "invalid"
    assert rec.changes == []
    assert (await decide(cmds, signed(good)))["ok"]
    assert (await decide(cmds, signed(good)))["reason"] == "replayed"
    assert (await decide(cmds, signed(good) + b"\n"))["reason"] == "replayed"  # a trailing newline is no new command
    now[0] += 30
    assert (await decide(cmds, signed(good)))["reason"] == "replayed"  # still within the window
    now[0] += 31
    assert (await decide(cmds, signed(good)))["reason"] == "stale"  # out of the window: the ts says so
    assert [ch.actor for _, ch in rec.changes] == ["mes:c-1/signed"]
    assert cmds.to_json()["reasons"] == {"unsigned": 1, "bad_signature": 2, "stale": 3, "invalid": 1, "replayed": 3}


def test_the_documented_shell_recipe_signs_a_command(tmp_path):
    """The README's openssl recipe, run as it stands (but for mosquitto_pub), gives a payload the gateway verifies."""
    key = tmp_path / "key"
    key.write_text(KEY + "\n")
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in readme.split("```sh\n")[1:] if "openssl dgst" in b).split("```")[0]
    script = block.split("mosquitto_pub")[0].rstrip().removesuffix("|").replace(KEY_PATH, str(key))
    payload = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    body, sig = commands.unframe(payload)
    Guard(KEY.encode(), 60).verify(body, sig)
    assert orjson.loads(body)["work_order"] == "WO-1001"
    assert sig == hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest().encode()


# --- through mosquitto --------------------------------------------------------------------------


async def test_bad_commands_are_refused_on_the_reply_topic_and_nothing_is_applied(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [])
    bad = [
        {"action": "start", "work_order": "WO-X", "extra": {"bom": 5}},
        {"action": "start", "work_order": "WO-X", "priority": "high"},
        {"action": "start", "work_order": 5},
        {"action": "start", "work_order": "W" * 300_000},
    ]
    async with Upstream(broker.port, f"{BASE}/#") as up, InProcess(path) as gw:
        await connected(gw)
        async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
            for cmd in bad:
                await mes.publish(CMD, orjson.dumps(cmd), qos=1)
            await mes.publish(CMD, orjson.dumps({"id": "c-9", "action": "start", "work_order": "WO-OK"}), qos=1)
        out = await wait_replies(up, 5)
        st = await gw.status()
        await up.wait(lambda rs: any(r["type"] == "context" for r in rs))  # it comes through the buffer, after the reply
    assert [(r["ok"], r.get("reason")) for r in out] == [(False, "invalid")] * 3 + [(False, "too_large"), (True, None)]
    assert out[0]["error"] == "extra.bom: Input should be a valid list" and out[0]["station"] == "st10"
    assert out[-1]["id"] == "c-9" and out[-1]["gateway_id"] == "gw-test"
    assert [r["work_order"] for r in up.of(type="context")] == ["WO-OK"]
    assert st["contexts"]["st10"]["extra"] == {}
    assert (st["commands"]["accepted"], st["commands"]["reasons"]) == (1, {"invalid": 3, "too_large": 1})


async def test_mqtt5_reply_carries_the_correlation_data_to_the_response_topic(tmp_path, broker):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    path = write_config(tmp_path, broker.port, [], mqtt={"protocol": "5"})
    v5 = aiomqtt.ProtocolVersion.V5
    async with InProcess(path) as gw, aiomqtt.Client("127.0.0.1", broker.port, protocol=v5) as mes:
        await connected(gw)
        await mes.subscribe(f"{BASE}/_gateway/gw-test/reply/#", qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{BASE}/_gateway/gw-test/reply/mes-1"
        props.CorrelationData = b"req-77"
        await mes.publish(CMD, orjson.dumps({"action": "start", "work_order": "WO-5"}), qos=1, properties=props)
        async with asyncio.timeout(20):
            msg = await anext(aiter(mes.messages))
    assert str(msg.topic) == f"{BASE}/_gateway/gw-test/reply/mes-1"
    assert msg.properties.CorrelationData == b"req-77" and orjson.loads(msg.payload)["ok"]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_a_retained_command_is_never_applied(tmp_path, broker, protocol):
    path = write_config(tmp_path, broker.port, [], mqtt={"protocol": protocol})
    async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
        await mes.publish(CMD, orjson.dumps({"action": "start", "work_order": "WO-OLD"}), qos=1, retain=True)
    async with Upstream(broker.port, f"{BASE}/#") as up, InProcess(path) as gw:
        (out,) = await wait_replies(up, 1)  # handed over on subscribing
        assert (out["ok"], out["reason"]) == (False, "retained")
        if protocol == "5":  # on a live subscription too: retain-as-published keeps the flag
            async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
                await mes.publish(CMD, orjson.dumps({"action": "start", "work_order": "WO-LIVE"}), qos=1, retain=True)
            await wait_replies(up, 2)
        st = await gw.status()
    assert st["contexts"]["st10"]["state"] == "idle" and not up.of(type="context")
    assert st["commands"]["reasons"] == {"retained": 2 if protocol == "5" else 1}


async def test_signed_commands_through_mosquitto(tmp_path, broker):
    key = tmp_path / "commands.key"
    key.write_text(KEY + "\n")
    path = write_config(tmp_path, broker.port, [], commands={"key_file": str(key), "max_age": 30})
    now = time.time()
    cmd = {"id": "c-1", "ts": now, "action": "start", "work_order": "WO-S"}
    async with Upstream(broker.port, f"{BASE}/#") as up, InProcess(path) as gw:
        await connected(gw)
        async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
            await mes.publish(CMD, orjson.dumps({**cmd, "work_order": "WO-U"}), qos=1)
            await mes.publish(CMD, signed({**cmd, "work_order": "WO-B"}, "0" * 64), qos=1)
            await mes.publish(CMD, signed({**cmd, "id": "c-0", "ts": now - 300, "work_order": "WO-OLD"}), qos=1)
            await mes.publish(CMD, signed(cmd), qos=1)
            await mes.publish(CMD, signed(cmd), qos=1)
        out = await wait_replies(up, 5)
        st = await gw.status()
        await up.wait(lambda rs: any(r["type"] == "context" for r in rs))
    assert [r.get("reason") for r in out] == ["unsigned", "bad_signature", "stale", None, "replayed"]
    assert st["commands"]["signed"] and st["contexts"]["st10"]["work_order"] == "WO-S"
    (ev,) = up.of(type="context")
    assert (ev["source"], ev["actor"]) == ("mes", "mes:c-1/signed")


def test_an_unreadable_or_short_key_stops_the_start(tmp_path):
    from gateway import config as config_mod
    from gateway.ops.preflight import preflight
    from gateway.errors import ConfigError

    short = tmp_path / "short.key"
    short.write_text("too-short\n")
    for key, expected in ((tmp_path / "missing.key", "commands: cannot read the signing key"), (short, "at least 32 are needed")):
        cfg = config_mod.load(write_config(tmp_path, 1, [], commands={"key_file": str(key)}))
        with pytest.raises(ConfigError) as exc:
            preflight(cfg)
        assert expected in "\n".join(exc.value.problems)
    with pytest.raises(ConfigError, match="commands.colour: unknown field"):
        config_mod.load(write_config(tmp_path, 1, [], commands={"colour": 1}))


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_commands_switched_off_leave_no_subscription(tmp_path, broker, protocol):
    mqtt = {"protocol": protocol}
    on = write_config(tmp_path, broker.port, [], mqtt=mqtt)
    async with InProcess(on) as gw:  # the persistent session now holds the command subscription
        await connected(gw)
    off = write_config(tmp_path, broker.port, [], mqtt=mqtt, commands={"enabled": False})
    async with InProcess(off) as gw:
        st = await gw.wait_status(lambda s: s["broker"]["state"] == "connected")
        assert st["commands"]["enabled"] is False
    # Sent while the gateway is away: a session still subscribed would queue it and hand it over on
    # the next connect, before anything published after that.
    async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
        await mes.publish(CMD, orjson.dumps({"action": "start", "work_order": "WO-QUEUED"}), qos=1)
    on = write_config(tmp_path, broker.port, [], mqtt=mqtt)
    async with Upstream(broker.port, f"{BASE}/#") as up, InProcess(on) as gw:
        await connected(gw)
        async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
            await mes.publish(CMD, orjson.dumps({"action": "start", "work_order": "WO-AFTER"}), qos=1)
        (out,) = await wait_replies(up, 1)
        st = await gw.status()
        await up.wait(lambda rs: any(r["type"] == "context" for r in rs))  # it comes through the buffer, after the reply
    assert out["ok"] and st["commands"]["accepted"] == 1
    assert [r["work_order"] for r in up.of(type="context")] == ["WO-AFTER"]


async def test_commands_switched_off_are_not_applied_even_if_delivered():
    cmds, rec = handler(enabled=False)
    assert (await decide(cmds, {"action": "start", "work_order": "WO-1"}))["reason"] == "disabled"
    assert rec.changes == []


async def test_the_mes_command_id_is_the_actor_of_the_change(tmp_path, broker):
    path = write_config(tmp_path, broker.port, [])
    async with Upstream(broker.port, f"{BASE}/st10/context") as up, InProcess(path) as gw:
        await connected(gw)
        async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
            await mes.publish(CMD, orjson.dumps({"id": "mes-4711", "action": "start", "work_order": "WO-7"}), qos=1)
        await up.wait(lambda rs: len(rs) == 1)
    assert (up.records[0]["source"], up.records[0]["actor"]) == ("mes", "mes:mes-4711/unsigned")


async def test_a_bug_in_handling_one_command_costs_that_command_only(tmp_path, broker, monkeypatch):
    real = Commands._decode

    def decode(self, payload):
        if b"WO-BOOM" in payload:
            raise ZeroDivisionError("a bug nobody listed")
        return real(self, payload)

    monkeypatch.setattr(Commands, "_decode", decode)
    path = write_config(tmp_path, broker.port, [{"kind": "synthetic", "name": "oven", "rate": 50, "tags": 1}])
    async with Upstream(broker.port, "shopfloor/#") as up, InProcess(path) as gw:
        await connected(gw)
        async with aiomqtt.Client("127.0.0.1", broker.port) as mes:
            await mes.publish(CMD, orjson.dumps({"action": "start", "work_order": "WO-BOOM"}), qos=1)
            await mes.publish(CMD, orjson.dumps({"action": "start", "work_order": "WO-1"}), qos=1)
        got = await wait_replies(up, 2)
        assert (got[0]["ok"], got[0]["reason"]) == (False, "internal_error") and got[1]["ok"]
        st = await gw.status()
        assert st["broker"]["connects"] == 1 and st["contexts"]["st10"]["work_order"] == "WO-1"
        n = len(up.of(device="oven"))
        await up.wait(lambda rs: len([r for r in rs if r.get("device") == "oven"]) > n + 10)
