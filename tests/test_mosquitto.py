"""The example broker ACL and password file of config/mosquitto/, in a real mosquitto: only the MES
account changes a station's context; a gateway publishes its data and nothing of anyone else's."""

from __future__ import annotations

import shutil
import subprocess

import aiomqtt
import orjson
import pytest

from tests.conftest import ROOT, Broker, InProcess, Upstream, write_config

EXAMPLES = ROOT / "config" / "mosquitto"
LINE1 = "shopfloor/plant1/assembly/line1"
CMD = f"{LINE1}/st10/cmd/context"


@pytest.fixture
def plant_broker(tmp_path):
    """mosquitto with the example ACL and the example password file, hashed as the README says."""
    passwd = tmp_path / "passwd"
    shutil.copy(EXAMPLES / "passwd.example", passwd)
    accounts = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
    assert "change-me" not in passwd.read_text()
    b = Broker(tmp_path / "broker", extra=f"password_file {passwd}\nacl_file {EXAMPLES / 'acl'}", anonymous=False)
    b.start()
    yield b, accounts
    b.stop()


def login(accounts: dict[str, str], user: str) -> dict[str, str]:
    return {"username": user, "password": accounts[user]}


async def test_only_the_mes_account_changes_a_context(tmp_path, plant_broker):
    broker, accounts = plant_broker
    secret = tmp_path / "gw-password"
    secret.write_text(accounts["gw-line1"] + "\n")
    gateway = {"id": "gw-line1", "site": "plant1", "area": "assembly", "line": "line1", "stations": ["st10"]}
    devices = [{"kind": "synthetic", "name": "press", "rate": 50, "tags": 1}]
    path = write_config(tmp_path, broker.port, devices, gateway=gateway, mqtt={"username": "gw-line1", "password_file": str(secret)})
    evil = orjson.dumps({"action": "start", "work_order": "WO-EVIL"})
    async with Upstream(broker.port, "shopfloor/#", **login(accounts, "mes")) as mes_view, InProcess(path) as gw:
        await mes_view.wait(lambda rs: any(r["type"] == "telemetry" for r in rs))  # the gateway's data gets through
        with pytest.raises(aiomqtt.MqttError):  # no login, no entry
            async with aiomqtt.Client("127.0.0.1", broker.port) as anonymous:
                await anonymous.publish(CMD, evil, qos=1)
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", broker.port, username="mes", password="guessed") as guess:
                await guess.publish(CMD, evil, qos=1)
        # A foreign gateway's account, and this gateway's own account from elsewhere: mosquitto
        # acknowledges (MQTT 3.1.1) and drops what the ACL denies.
        for user in ("gw-line2", "gw-line1"):
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"intruder-{user}", **login(accounts, user)) as intruder:
                await intruder.publish(CMD, evil, qos=1)
                if user == "gw-line2":  # nor does it publish into another line's data
                    fake = orjson.dumps({"seq": 1, "type": "telemetry", "device": "fake"})
                    for topic in (f"{LINE1}/st10/press/telemetry", f"{LINE1}/st10/context", f"{LINE1}/_gateway/gw-line1/reply"):
                        await intruder.publish(topic, fake, qos=1)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="mes-cmd", **login(accounts, "mes")) as mes:
            await mes.publish(CMD, orjson.dumps({"id": "mes-1", "action": "start", "work_order": "WO-MES"}), qos=1)
        # Commands reach the gateway in the order the broker accepted them: had any denied one got
        # through, it would have been decided before this one.
        await mes_view.wait(lambda rs: any(r["type"] == "context" for r in rs))
        await mes_view.wait(lambda rs: any(r["type"] == "telemetry" and r["work_order"] == "WO-MES" for r in rs))
        await mes_view.wait(lambda rs: any(t.endswith("/reply") for t, _ in mes_view.messages))
        st = await gw.status()
    assert (st["commands"]["accepted"], st["commands"]["rejected"]) == (1, 0)
    assert [(r["work_order"], r["actor"]) for r in mes_view.of(type="context")] == [("WO-MES", "mes:mes-1/unsigned")]
    replies = [p for t, p in mes_view.messages if t.endswith("/reply")]
    assert [(r["id"], r["ok"]) for r in replies] == [("mes-1", True)]
    assert not mes_view.of(device="fake")
    assert st["broker"]["state"] == "connected" and st["counters"]["dead_lettered"] == 0
