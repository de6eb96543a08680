"""TLS and logins upstream, against a real mosquitto with a TLS listener and a password file.

Certificates are made at test time: a CA, a broker certificate for 127.0.0.1 (SAN IP), a client
certificate, and a second CA that signed none of them. A refused connection must leave the gateway
running, capturing into the buffer, with a reason in `status` that says what to fix; once fixed,
everything buffered arrives.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from tests.conftest import Broker, InProcess, Upstream, write_config
from tests.pki import CONSUMER_PASSWORD, GATEWAY_PASSWORD, Pki, passwd_line, password_file, tls_broker

READINGS = 100
TELEMETRY = "shopfloor/+/+/+/+/+/telemetry"


def consumer(broker: Broker, pki: Pki) -> Upstream:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client), str(pki.key(pki.client)))  # accepted with or without mTLS
    return Upstream(broker.port, TELEMETRY, tls_context=ctx, username="consumer", password=CONSUMER_PASSWORD)


def gateway_config(tmp_path: Path, broker: Broker, tls: dict, login: dict, devices: bool = True) -> Path:
    devs = [{"kind": "synthetic", "name": "press", "rate": 1000, "tags": 2, "limit": READINGS}] if devices else []
    return write_config(tmp_path, broker.port, devs, mqtt={"username": "gw-test", **login, "tls": tls, "keepalive": 5})


def assert_all_arrived(up: Upstream) -> None:
    seqs = sorted({r["seq"] for r in up.records})
    assert len(seqs) == READINGS and seqs == list(range(seqs[0], seqs[0] + READINGS)), seqs[:5]


# --- it works --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["password_file", "password_credential"])
async def test_readings_arrive_over_tls_with_ca_verification(tmp_path, pki, brokers, monkeypatch, source):
    broker = brokers(tls_broker(tmp_path, pki, mutual=False))
    if source == "password_file":
        login = password_file(tmp_path)
    else:
        # What systemd's LoadCredential=mqtt-password:… hands over.
        creds = tmp_path / "credentials"
        creds.mkdir()
        (creds / "mqtt-password").write_text(GATEWAY_PASSWORD)
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
        login = {"password_credential": "mqtt-password"}
    path = gateway_config(tmp_path, broker, {"ca_file": str(pki.ca)}, login)
    async with consumer(broker, pki) as up, InProcess(path) as gw:
        await up.wait(lambda rs: len({r["seq"] for r in rs}) >= READINGS)
        st = await gw.status()
        assert st["broker"]["state"] == "connected"
    assert_all_arrived(up)


async def test_mutual_tls_with_client_certificate(tmp_path, pki, brokers):
    broker = brokers(tls_broker(tmp_path, pki, mutual=True))
    tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client), "key_file": str(pki.key(pki.client))}
    path = gateway_config(tmp_path, broker, tls, password_file(tmp_path))
    async with consumer(broker, pki) as up, InProcess(path):
        await up.wait(lambda rs: len({r["seq"] for r in rs}) >= READINGS)
    assert_all_arrived(up)


# --- refused: the gateway keeps capturing, says why, and loses nothing ------------------------------

REFUSALS = {
    # case: (mutual TLS at the broker, gateway TLS settings, gateway password, words the reason must hold)
    "wrong_ca": (False, "other_ca", GATEWAY_PASSWORD, ["certificate verify failed", "mqtt.tls.ca_file"]),
    "wrong_password": (False, "ca", "not the password", ["refused the login", "mqtt.username", "password_file"]),
    "no_client_certificate": (True, "ca", GATEWAY_PASSWORD, ["requires a client certificate", "cert_file"]),
}


@pytest.mark.parametrize("case", REFUSALS)
async def test_refused_connection_keeps_readings_until_fixed(tmp_path, pki, brokers, case):
    mutual, ca, password, words = REFUSALS[case]
    broker = brokers(tls_broker(tmp_path, pki, mutual=mutual))
    path = gateway_config(tmp_path, broker, {"ca_file": str(getattr(pki, ca))}, password_file(tmp_path, password))
    async with InProcess(path) as gw:
        st = await gw.wait_status(lambda s: s["counters"]["captured"] == READINGS and s["broker"]["state"] == "disconnected")
        reason = st["broker"]["reason"]
        for word in words:
            assert word in reason, reason
        assert st["running"] and st["buffer"]["rows"] == READINGS
        assert st["counters"]["published"] == 0 and st["counters"]["dead_lettered"] == 0
    # Fixed (right CA, password, client certificate): the buffered readings go out, all of them.
    tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client), "key_file": str(pki.key(pki.client))}
    path = gateway_config(tmp_path, broker, tls, password_file(tmp_path), devices=False)
    async with consumer(broker, pki) as up, InProcess(path) as gw:
        await up.wait(lambda rs: len({r["seq"] for r in rs}) >= READINGS)
        await gw.wait_status(lambda s: s["buffer"]["rows"] == 0)
    assert_all_arrived(up)


def test_password_hash_fallback_is_what_mosquitto_accepts(tmp_path, brokers):
    """The hash written when mosquitto_passwd is missing logs in (and a wrong password does not)."""
    import aiomqtt

    (tmp_path / "passwd").write_text(passwd_line("u", "right") + "\n")
    broker = brokers(Broker(tmp_path / "broker", extra=f"password_file {tmp_path / 'passwd'}", anonymous=False))

    async def login(password: str) -> bool:
        try:
            async with aiomqtt.Client("127.0.0.1", broker.port, username="u", password=password):
                return True
        except aiomqtt.MqttError:
            return False

    async def both():
        return await login("right"), await login("wrong")

    assert asyncio.run(both()) == (True, False)


# --- the broker's certificate: its name and its dates ------------------------------------------------


@pytest.mark.parametrize("case", ["elsewhere", "expired"])
async def test_a_certificate_for_another_name_or_out_of_date_is_refused_with_that_reason(tmp_path, pki, brokers, case):
    broker = brokers(tls_broker(tmp_path, pki, mutual=False, server=getattr(pki, case)))
    path = gateway_config(tmp_path, broker, {"ca_file": str(pki.ca)}, password_file(tmp_path))
    async with InProcess(path) as gw:
        st = await gw.wait_status(lambda s: s["counters"]["captured"] == READINGS and s["broker"]["state"] == "disconnected" and s["broker"]["reason"])
    reason = st["broker"]["reason"]
    if case == "expired":
        assert "has expired" in reason and "not signed" not in reason, reason
    else:
        assert "does not name '127.0.0.1'" in reason, reason


async def test_an_unchecked_hostname_connects_but_is_warned_about(tmp_path, pki, brokers):
    broker = brokers(tls_broker(tmp_path, pki, mutual=False, server=pki.elsewhere))
    path = gateway_config(tmp_path, broker, {"ca_file": str(pki.ca), "check_hostname": False}, password_file(tmp_path))
    async with consumer_for(broker, pki) as up, InProcess(path) as gw:
        await up.wait(lambda rs: len({r["seq"] for r in rs}) >= READINGS)
        st = await gw.status()
    assert any("check_hostname is false" in w for w in st["broker"]["warnings"])
    assert_all_arrived(up)


def consumer_for(broker: Broker, pki: Pki) -> Upstream:
    """A consumer that trusts the CA but, like the gateway here, does not check the name."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(pki.client), str(pki.key(pki.client)))
    return Upstream(broker.port, TELEMETRY, tls_context=ctx, username="consumer", password=CONSUMER_PASSWORD)
