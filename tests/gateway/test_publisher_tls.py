"""TLS and logins upstream, against a real mosquitto with a TLS listener and a password file.

Certificates are made at test time: a CA, a broker certificate for 127.0.0.1 (SAN IP), a client
certificate, and a second CA that signed none of them. A refused connection must leave the gateway
running, capturing into the buffer, with a reason in `status` that says what to fix; once fixed,
everything buffered arrives.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import Broker, InProcess, Upstream, write_config

READINGS = 100
TELEMETRY = "shopfloor/+/+/+/+/+/telemetry"
GATEWAY_PASSWORD = "s3cret gateway pass"
CONSUMER_PASSWORD = "consumer-pass"

# --- a private PKI ---------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: str, issuer: x509.Name, public_key, expired: bool = False) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    start, end = (now - dt.timedelta(days=30), now - dt.timedelta(days=1)) if expired else (now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def make_ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)  # sign certs and CRLs
    cert = (
        _builder(cn, _name(cn), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(ca, cn: str, server: bool, san: x509.GeneralName | None = None, expired: bool = False):
    """A certificate from `ca`; a server one names 127.0.0.1 unless `san` names something else."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    b = (
        _builder(cn, ca_cert.subject, key.public_key(), expired)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([san or x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def _write(folder: Path, stem: str, key, cert) -> Path:
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        (folder / f"{stem}.key").write_bytes(pem)
    return folder / f"{stem}.pem"


def passwd_line(user: str, password: str) -> str:
    """mosquitto 2.0's password hash ($7$: PBKDF2-SHA512, 101 iterations, 12-byte salt)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_passwd(path: Path, users: dict[str, str]) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        path.write_text("".join(passwd_line(u, p) + "\n" for u, p in users.items()))
        return
    path.touch()
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)


@dataclass
class Pki:
    folder: Path
    ca: Path
    other_ca: Path
    server: Path
    client: Path
    passwd: Path
    elsewhere: Path  # a broker certificate from the right CA for another name
    expired: Path

    def key(self, cert: Path) -> Path:
        return cert.with_suffix(".key")


@pytest.fixture
def pki(tmp_path) -> Pki:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = make_ca("Plant test CA")
    pki = Pki(
        folder,
        ca=_write(folder, "ca", None, ca[1]),
        other_ca=_write(folder, "other-ca", None, make_ca("Some other CA")[1]),
        server=_write(folder, "broker", *issue(ca, "broker", server=True)),
        client=_write(folder, "gw-test", *issue(ca, "gw-test", server=False)),
        passwd=folder / "passwd",
        elsewhere=_write(folder, "elsewhere", *issue(ca, "elsewhere", server=True, san=x509.DNSName("broker.elsewhere.example"))),
        expired=_write(folder, "expired", *issue(ca, "broker", server=True, expired=True)),
    )
    write_passwd(pki.passwd, {"gw-test": GATEWAY_PASSWORD, "consumer": CONSUMER_PASSWORD})
    return pki


def tls_broker(tmp_path: Path, pki: Pki, mutual: bool, server: Path | None = None) -> Broker:
    server = server or pki.server
    listener = f"cafile {pki.ca}\ncertfile {server}\nkeyfile {pki.key(server)}\n"
    if mutual:
        listener += "require_certificate true\n"
    return Broker(tmp_path / "broker", listener=listener, extra=f"password_file {pki.passwd}", anonymous=False)


@pytest.fixture
def brokers():
    started: list[Broker] = []

    def start(b: Broker) -> Broker:
        b.start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def consumer(broker: Broker, pki: Pki) -> Upstream:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client), str(pki.key(pki.client)))  # accepted with or without mTLS
    return Upstream(broker.port, TELEMETRY, tls_context=ctx, username="consumer", password=CONSUMER_PASSWORD)


def gateway_config(tmp_path: Path, broker: Broker, tls: dict, login: dict, devices: bool = True) -> Path:
    devs = [{"kind": "synthetic", "name": "press", "rate": 1000, "tags": 2, "limit": READINGS}] if devices else []
    return write_config(tmp_path, broker.port, devs, mqtt={"username": "gw-test", **login, "tls": tls, "keepalive": 5})


def password_file(tmp_path: Path, password: str = GATEWAY_PASSWORD) -> dict:
    path = tmp_path / "mqtt-password"
    path.write_text(password + "\n")
    return {"password_file": str(path)}




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
