"""OPC UA server with the Modbus PLC's process tags, unsecured and secured endpoints, and fault injection.

    python -m simulators opcua --port 4840                  # prints the URL and the server certificate path
    python -m simulators opcua --port 4840 --extra 1000     # plus 1000 changing Double nodes (benchmark)

In tests::

    async with OpcUaSim() as sim:                 # sim.url, sim.cert (server certificate, DER)
        await sim.set("press_temperature", 200.0) # pin a value (it stops moving)
        await sim.set_status("press_temperature", "BadSensorFailure")
        sim.fault = "silent"                      # stop reading from clients: requests time out
        await sim.restart()                       # a new server process on the same port: sessions are gone

Address space (namespace `urn:shopfloor:simulator`, index 2 on a fresh server)::

    Objects/Press1/<tag>     NodeId ns=2;s=Press1.<tag>     browse path 0:Objects/2:Press1/2:<tag>
    Objects/Bench/v0000 …    NodeId ns=2;s=Bench.v0000      (only with extra > 0) Double, changing every period
    Objects/Structs/<name>   NodeId ns=2;s=Structs.<name>   static structured values, below

Structured values (`Structs`, static; `await sim.write("text", value)` replaces one)::

    batch     BatchInfo, a structure type of the simulator's own: Lot String, Quantity UInt32,
              Setpoints Double[], Started DateTime, Label LocalizedText
    batches   BatchInfo[2]
    unit      EUInformation (a standard structure): degree Celsius
    label     LocalizedText "Presse 1" (de)      qname   QualifiedName 2:Press1
    ref       NodeId ns=2;s=Press1.recipe         blob    ByteString 00 01 fe ff
    stamp     DateTime 2026-01-02T03:04:05Z       mixed   Variant[] of Int32 7, String "seven", Double 7.5
    text      String "short" (write a long one to test caps)    doubles  Double[] 0.0 … 9.0
    number    Double 1.5 (write NaN or infinity to test the driver)

Tags are the Modbus simulator's points (same names, same motion) in engineering units: the ×0.1
integers of the Modbus map are Double here (motor_current 12.5 A), the rest keep their type (Float,
UInt32, Int64, String, Boolean …).

Endpoints at one URL: None, Basic256Sha256 Sign, Basic256Sha256 SignAndEncrypt. Anonymous login and
user `operator` / password `secret` are accepted (other passwords are refused). Client certificates
are accepted without a trust list: the simulator tests the gateway's checks, not its own.

Invariants:
- The server certificate is generated once per simulator (not per restart), so a client that trusts
  it keeps trusting it across restarts; `cert_dir` lets a test generate it where it wants.
- `restart` builds a brand-new server (fresh sessions and subscriptions) on the same port.
- Values are the same deterministic functions of time as in the Modbus simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.structures104 import new_struct, new_struct_field
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from simulators.modbus import POINTS
from simulators.run import free_port, stop_task, until_interrupted

for _name in ("asyncua", "asyncua.server", "asyncua.common", "asyncua.uaprotocol"):
    logging.getLogger(_name).setLevel(logging.ERROR)

NAMESPACE = "urn:shopfloor:simulator"
APP_URI = "urn:shopfloor:simulator:server"
USERS = {"operator": "secret"}
SCALED = {"motor_current", "ambient_temperature", "oil_temperature", "room_humidity"}  # x0.1 in the Modbus map
VARIANT = {
    "int16": ua.VariantType.Int16, "uint16": ua.VariantType.UInt16, "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32, "int64": ua.VariantType.Int64, "float32": ua.VariantType.Float,
    "float64": ua.VariantType.Double, "string": ua.VariantType.String, "bool": ua.VariantType.Boolean,
}


def make_certificate(folder: Path, name: str, uri: str, server: bool) -> tuple[Path, Path]:
    """A self-signed OPC UA application certificate (DER) and its key (PEM) in `folder`."""
    key = cert_gen.generate_private_key()
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    sans = [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname()), x509.DNSName("localhost")]
    cert = cert_gen.generate_self_signed_app_certificate(key, name, {"organizationName": "shopfloor-gateway tests"}, sans, use, days=30)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    key_path.chmod(0o600)
    return cert_path, key_path


class _Users:
    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None:
            return User(role=UserRole.User)
        if USERS.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def _engineering(name: str, value: Any) -> Any:
    return value * 0.1 if name in SCALED else value


class OpcUaSim:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, period: float = 0.1, moving: bool = True,
                 extra: int = 0, cert_dir: Path | None = None):
        self.host, self.port, self.period, self.moving, self.extra = host, port, period, moving, extra
        self.cert_dir = cert_dir
        self.server: Server | None = None
        self.pinned: dict[str, Any] = {}
        self.status: dict[str, ua.StatusCode] = {}
        self.nodes: dict[str, ua.NodeId] = {}
        self.ns = 0
        self.starts = 0
        self._fault: str | None = None
        self._t0 = time.monotonic()
        self._ticker: asyncio.Task | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/shopfloor"

    def nodeid(self, name: str) -> str:
        return self.nodes[name].to_string()

    async def __aenter__(self) -> OpcUaSim:
        if self.cert_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="opcua-sim-")
            self.cert_dir = Path(self._tmp.name)
        self.cert, self.key = make_certificate(Path(self.cert_dir), "simulator", APP_URI, server=True)
        self.port = self.port or free_port(self.host)
        await self.start()
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc) -> None:
        await stop_task(self._ticker)
        await self.stop()
        if self._tmp:
            self._tmp.cleanup()

    async def start(self) -> None:
        server = Server(user_manager=_Users())
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("shopfloor simulator")
        await server.set_application_uri(APP_URI)
        await server.load_certificate(str(self.cert))
        await server.load_private_key(str(self.key))
        server.set_security_policy([
            ua.SecurityPolicyType.NoSecurity,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ])
        self.ns = await server.register_namespace(NAMESPACE)
        press = await server.nodes.objects.add_object(ua.NodeId("Press1", self.ns), ua.QualifiedName("Press1", self.ns))
        t = self.now()
        for p in POINTS:
            nid = ua.NodeId(f"Press1.{p.name}", self.ns)
            vtype = ua.VariantType.Double if p.name in SCALED else VARIANT[p.type]
            await press.add_variable(nid, ua.QualifiedName(p.name, self.ns), ua.Variant(self._value(p, t), vtype))
            self.nodes[p.name] = nid
        if self.extra:
            bench = await server.nodes.objects.add_object(ua.NodeId("Bench", self.ns), ua.QualifiedName("Bench", self.ns))
            for i in range(self.extra):
                name = f"v{i:04d}"
                nid = ua.NodeId(f"Bench.{name}", self.ns)
                await bench.add_variable(nid, ua.QualifiedName(name, self.ns), ua.Variant(0.0, ua.VariantType.Double))
                self.nodes[name] = nid
        await self._structs(server)
        await server.start()
        self.server = server
        self.starts += 1
        self._fault = None
        await self._refresh()

    async def _structs(self, server: Server) -> None:
        folder = await server.nodes.objects.add_object(ua.NodeId("Structs", self.ns), ua.QualifiedName("Structs", self.ns))
        batch_type, _ = await new_struct(server, self.ns, "BatchInfo", [
            new_struct_field("Lot", ua.VariantType.String),
            new_struct_field("Quantity", ua.VariantType.UInt32),
            new_struct_field("Setpoints", ua.VariantType.Double, array=True),
            new_struct_field("Started", ua.VariantType.DateTime),
            new_struct_field("Label", ua.VariantType.LocalizedText),
        ])
        # the class is generated once per process; after a restart it is already registered in `ua`
        batch = (await server.load_data_type_definitions()).get("BatchInfo") or ua.BatchInfo
        stamp = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

        def info(lot: str, quantity: int) -> Any:
            return batch(Lot=lot, Quantity=quantity, Setpoints=[180.0, 182.5], Started=stamp, Label=ua.LocalizedText("Pressing", "en"))

        celsius = ua.EUInformation(NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact", UnitId=4408652,
                                   DisplayName=ua.LocalizedText("°C"), Description=ua.LocalizedText("degree Celsius"))
        values: dict[str, tuple[ua.Variant, ua.NodeId | None]] = {
            "batch": (ua.Variant(info("LOT-A42", 120), ua.VariantType.ExtensionObject), batch_type.nodeid),
            "batches": (ua.Variant([info("LOT-A42", 120), info("LOT-B7", 5)], ua.VariantType.ExtensionObject), batch_type.nodeid),
            "unit": (ua.Variant(celsius, ua.VariantType.ExtensionObject), ua.NodeId(ua.ObjectIds.EUInformation)),
            "label": (ua.Variant(ua.LocalizedText("Presse 1", "de")), None),
            "qname": (ua.Variant(ua.QualifiedName("Press1", self.ns)), None),
            "ref": (ua.Variant(ua.NodeId("Press1.recipe", self.ns)), None),
            "blob": (ua.Variant(b"\x00\x01\xfe\xff", ua.VariantType.ByteString), None),
            "stamp": (ua.Variant(stamp, ua.VariantType.DateTime), None),
            "mixed": (ua.Variant([ua.Variant(7, ua.VariantType.Int32), ua.Variant("seven"), ua.Variant(7.5)], ua.VariantType.Variant), ua.NodeId(ua.ObjectIds.BaseDataType)),
            "text": (ua.Variant("short", ua.VariantType.String), None),
            "doubles": (ua.Variant([float(i) for i in range(10)], ua.VariantType.Double), None),
            "number": (ua.Variant(1.5, ua.VariantType.Double), None),
        }
        for name, (variant, datatype) in values.items():
            nid = ua.NodeId(f"Structs.{name}", self.ns)
            kw = {"datatype": datatype} if datatype is not None else {}
            await folder.add_variable(nid, ua.QualifiedName(name, self.ns), variant, **kw)
            self.nodes[name] = nid

    async def write(self, name: str, value: Any, vtype: ua.VariantType | None = None) -> None:
        """Replace the value of a `Structs` node (e.g. a String of 8 MB)."""
        await self.server.write_attribute_value(self.nodes[name], ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=_utcnow()))

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    async def restart(self, downtime: float = 0.0) -> None:
        await self.stop()
        await asyncio.sleep(downtime)
        await self.start()

    @property
    def fault(self) -> str | None:
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        """`"silent"`: stop reading requests from every connected client (they time out); None: resume."""
        if value not in (None, "silent"):
            raise ValueError(f"unknown fault {value!r}")
        self._fault = value
        if self.server is not None:
            for transport in self.server.iserver.asyncio_transports:
                (transport.pause_reading if value else transport.resume_reading)()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def _value(self, p, t: float) -> Any:
        if p.name in self.pinned:
            return self.pinned[p.name]
        v = p.value(t if self.moving else 0.0) if callable(p.value) else p.value
        return _engineering(p.name, v)

    async def set(self, name: str, value: Any) -> None:
        """Pin a tag to `value` with good status; it no longer moves."""
        self.pinned[name] = value
        self.status.pop(name, None)
        await self._refresh()

    async def set_status(self, name: str, status: str | None) -> None:
        """Give a tag a status code by name (e.g. BadSensorFailure, UncertainLastUsableValue); None: good again."""
        if status is None:
            self.status.pop(name, None)
        else:
            self.status[name] = ua.StatusCode(getattr(ua.StatusCodes, status))
        await self._refresh()

    async def _refresh(self) -> None:
        server = self.server
        if server is None:
            return
        t = self.now()
        for p in POINTS:
            vtype = ua.VariantType.Double if p.name in SCALED else VARIANT[p.type]
            status = self.status.get(p.name, ua.StatusCode(ua.StatusCodes.Good))
            value = None if status.is_bad() else self._value(p, t)
            variant = ua.Variant(value, vtype) if value is not None else ua.Variant()
            await server.write_attribute_value(self.nodes[p.name], ua.DataValue(variant, StatusCode=status, SourceTimestamp=_utcnow()))
        for i in range(self.extra if self.moving else 0):
            name = f"v{i:04d}"
            dv = ua.DataValue(ua.Variant(round(t + i, 3), ua.VariantType.Double), SourceTimestamp=_utcnow())
            await server.write_attribute_value(self.nodes[name], dv)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.period  # a fixed grid: the refresh's own time does not stretch the period
            await asyncio.sleep(max(0.0, due - loop.time()))
            due = max(due, loop.time() - self.period)
            if self.moving:
                await self._refresh()


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators opcua", description="OPC UA server with the PLC's process tags.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4840, help="TCP port (0: a free one)")
    p.add_argument("--period", type=float, default=0.1, help="seconds between value updates")
    p.add_argument("--extra", type=int, default=0, help="additional changing Double nodes Bench.v0000 … (benchmarks)")
    p.add_argument("--cert-dir", type=Path, help="where to write the server certificate (default: a temporary folder)")
    return p


async def _serve(args: argparse.Namespace) -> None:
    async with OpcUaSim(args.host, args.port, args.period, extra=args.extra, cert_dir=args.cert_dir) as sim:
        print(f"opcua simulator: {sim.url} certificate {sim.cert} namespace {sim.ns}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    return until_interrupted(_serve(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
