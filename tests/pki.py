"""A private PKI and a mosquitto with a TLS listener and a password file, made at test time: a CA,
a broker certificate for 127.0.0.1 (SAN IP), a client certificate, and a second CA that signed none
of them. The fixtures `pki` and `brokers` are registered for every test by tests/conftest.py."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulators.broker import Broker

GATEWAY_PASSWORD = "s3cret gateway pass"
CONSUMER_PASSWORD = "consumer-pass"


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


def password_file(tmp_path: Path, password: str = GATEWAY_PASSWORD) -> dict:
    path = tmp_path / "mqtt-password"
    path.write_text(password + "\n")
    return {"password_file": str(path)}
