"""OPC UA through one subscription with a monitored item per node.

Invariants:
- Reconnection is the supervisor's: asyncua's own auto-reconnect is off. When the session dies (server
  restart, network loss, server silent past the watchdog) `readings()` raises `NotConnected`, and the
  next `connect()` builds a new session and re-creates every monitored item. One owner of backoff and
  health means an outage shows up in the gateway's health state instead of being hidden in a library.
- The server's certificate is checked against the trust list *before* our credentials travel: an
  untrusted server is `DriverFatal` with its subject and thumbprint, and it is checked again by asyncua
  when the session is created.
- A status code is data: good → good, uncertain → uncertain with the code name, bad → bad with no
  value and the code name. A node the server does not know becomes one bad reading with the reason;
  the other nodes keep flowing.
- Values go upstream as JSON-able objects (see `values`): structures, arrays of them, LocalizedText,
  NodeId … never a Python repr. Text and arrays beyond `max_string` / `max_array` are cut and the
  reading is uncertain with `truncated: …` in its reason; a NaN or infinity is a bad reading.
- Structures of the server's own types decode only once their definitions are loaded at connect
  (`structures`); without them a structure arrives as its TypeId and hex body.
- A full notification queue (the gateway cannot keep up) is a lost link, never a silent drop.
- asyncua logs every lost publish with a traceback; its loggers are raised to CRITICAL here, since the
  supervisor logs the state change once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent
from asyncua.common.utils import ServiceError
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from drivers.common.rules import Deadband, Step, chain
from drivers.opcua.config import Node, OpcUaConfig
from drivers.opcua.values import plain
from gateway.kit import DriverFatal, NotConnected, Reading

logging.getLogger("asyncua").setLevel(logging.CRITICAL)

QUEUE = 100_000  # notifications buffered between asyncua's publish loop and the gateway
SECURITY_FATAL = {"BadUserAccessDenied", "BadIdentityTokenRejected", "BadIdentityTokenInvalid", "BadCertificateUntrusted",
                  "BadCertificateInvalid", "BadSecurityChecksFailed", "BadSecurityPolicyRejected", "BadCertificateUriInvalid"}
LINK_ERRORS = (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError, ua.UaError)


def _epoch(dt: datetime.datetime | None) -> float | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex(":").upper()  # noqa: S303 - OPC UA identifies certificates by SHA-1


class OpcUa:
    def __init__(self, cfg: OpcUaConfig):
        self.cfg = cfg
        self.steps: dict[str, Step] = {}
        self.bands: dict[str, Deadband] = {}
        for n in cfg.nodes:
            self.steps[n.name], self.bands[n.name] = chain(n)
        self.heartbeats = [n.name for n in cfg.nodes if n.heartbeat]
        self.client: Client | None = None
        self.sub = None
        self.handles: dict[int, Node] = {}
        self.missing: list[Reading] = []
        self.lost: Exception | None = None
        self.counters = {"truncated": 0}

    # --- connect -----------------------------------------------------------------------------------

    async def connect(self) -> None:
        cfg = self.cfg
        self.lost = None
        client = self.client = Client(cfg.url, timeout=cfg.timeout, watchdog_intervall=cfg.watchdog)
        client.application_uri = cfg.application_uri
        client.session_timeout = 60_000
        if cfg.username:
            client.set_user(cfg.username)
            if cfg.password_file:
                client.set_password(_first_line(cfg.password_file))
        try:
            if cfg.security:
                await self._secure(client)
            await client.connect(auto_reconnect=False)
        except ua.UaStatusCodeError as exc:
            name = ua.StatusCode(exc.code).name
            if name in SECURITY_FATAL:
                raise DriverFatal(f"{cfg.url} refused the session: {name} (check user name, password and certificates)") from exc
            raise NotConnected(f"{cfg.url}: {name}") from exc
        except ServiceError as exc:
            raise DriverFatal(f"{cfg.url}: server certificate rejected: {ua.StatusCode(exc.code).name}") from exc
        except LINK_ERRORS as exc:
            raise NotConnected(f"cannot connect to {cfg.url}: {exc!r}") from exc

        async def on_lost(exc: Exception) -> None:
            self.lost = exc

        client.connection_lost_callback = on_lost
        if cfg.structures:
            try:
                await client.load_data_type_definitions()
            except ua.UaError:
                pass  # a server without (readable) type definitions: its structures arrive undecoded, as TypeId and body
            except LINK_ERRORS as exc:
                raise NotConnected(f"{cfg.url}: reading data type definitions failed: {exc!r}") from exc
        try:
            await self._subscribe(client)
        except LINK_ERRORS as exc:
            raise NotConnected(f"{cfg.url}: subscribing failed: {exc!r}") from exc

    async def _secure(self, client: Client) -> None:
        sec = self.cfg.security
        mode = getattr(ua.MessageSecurityMode, sec.mode)
        endpoints = await client.connect_and_get_server_endpoints()
        offered = [(e.SecurityPolicyUri.rsplit("#", 1)[-1], e.SecurityMode.name) for e in endpoints]
        match = [e for e in endpoints if e.SecurityPolicyUri == SecurityPolicyBasic256Sha256.URI and e.SecurityMode == mode]
        if not match:
            raise DriverFatal(f"{self.cfg.url} offers no {sec.policy}/{sec.mode} endpoint; it offers {sorted(set(offered))}")
        der = match[0].ServerCertificate
        cert = x509.load_der_x509_certificate(der)
        folders = [p for p in sec.trust if p.is_dir()]
        if len(folders) != len(sec.trust):
            missing = [str(p) for p in sec.trust if not p.is_dir()]
            raise DriverFatal(f"trust: {', '.join(missing)} is not a folder of trusted certificates")
        store = TrustStore(folders, [])
        await store.load()
        validator = CertificateValidator(
            CertificateValidatorOptions.TRUSTED | CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.REVOKED,
            store,
        )
        try:
            await validator(cert, match[0].Server)
        except ServiceError as exc:
            status = ua.StatusCode(exc.code).name
            raise DriverFatal(
                f"server certificate of {self.cfg.url} is not trusted ({status}): subject {cert.subject.rfc4514_string()}, "
                f"SHA-1 thumbprint {thumbprint(cert)}; to trust it, put the certificate into one of "
                f"{', '.join(map(str, folders))}"
            ) from exc
        password = _first_line(sec.private_key_password_file) if sec.private_key_password_file else None
        await client.set_security(
            SecurityPolicyBasic256Sha256, str(sec.certificate), str(sec.private_key), password, server_certificate=der, mode=mode
        )
        client.certificate_validator = validator

    async def _subscribe(self, client: Client) -> None:
        cfg = self.cfg
        self.handles, self.missing = {}, []
        nodes: list[tuple[Node, Any]] = []
        for n in cfg.nodes:
            try:
                node = client.get_node(n.node) if n.node else await client.nodes.objects.get_child(n.path.split("/"))
            except ua.UaStatusCodeError as exc:
                self.missing.append(self._bad(n, f"browse path {n.path}: {ua.StatusCode(exc.code).name}"))
                continue
            except ValueError as exc:  # a malformed NodeId string
                self.missing.append(self._bad(n, f"node {n.node!r}: {exc}"))
                continue
            nodes.append((n, node))
        fastest = min([n.sampling if n.sampling is not None else cfg.sampling for n in cfg.nodes] or [cfg.sampling])
        period_ms = 1000 * (cfg.publishing or max(fastest, 0.05))
        self.sub = await client.create_subscription(period_ms, None, queue_maxsize=QUEUE, overflow=OverflowPolicy.DISCONNECT)
        requests = []
        for handle, (n, node) in enumerate(nodes, start=1000):
            params = ua.MonitoringParameters()
            params.ClientHandle = handle
            params.SamplingInterval = 1000 * (n.sampling if n.sampling is not None else cfg.sampling)
            params.QueueSize = n.queue
            params.DiscardOldest = True
            if n.deadband and n.deadband_mode == "absolute":
                params.Filter = ua.DataChangeFilter(
                    Trigger=ua.DataChangeTrigger.StatusValue, DeadbandType=ua.DeadbandType.Absolute, DeadbandValue=n.deadband
                )
            request = ua.MonitoredItemCreateRequest()
            request.ItemToMonitor = ua.ReadValueId(NodeId=node.nodeid, AttributeId=ua.AttributeIds.Value)
            request.MonitoringMode = ua.MonitoringMode.Reporting
            request.RequestedParameters = params
            requests.append(request)
            self.handles[handle] = n
        # create in chunks: servers cap the items per request
        for i in range(0, len(requests), 500):
            chunk = requests[i : i + 500]
            for request, result in zip(chunk, await self.sub.create_monitored_items(chunk)):
                if isinstance(result, ua.StatusCode):
                    n = self.handles.pop(request.RequestedParameters.ClientHandle)
                    self.missing.append(self._bad(n, f"monitored item refused: {result.name}"))

    # --- readings ----------------------------------------------------------------------------------

    async def readings(self) -> AsyncIterator[Reading]:
        missing, self.missing = self.missing, []  # once per session
        for r in missing:
            for out in self.steps[r.tag](r):
                yield out
        sub = self.sub
        beats = [n.heartbeat for n in self.cfg.nodes if n.heartbeat]
        next_beat = time.time() + min(beats) if beats else None
        while True:
            wait = self.cfg.watchdog if next_beat is None else max(0.01, min(self.cfg.watchdog, next_beat - time.time()))
            try:
                ev = await sub.next_event(wait)
            except StopAsyncIteration:
                raise NotConnected(f"{self.cfg.url}: subscription closed") from None
            if isinstance(ev, DataChangeEvent):
                n = self.handles.get(ev.data.monitored_item.ClientHandle)
                if n is not None:
                    for out in self.steps[n.name](self._reading(n, ev)):
                        yield out
            elif isinstance(ev, StatusChangeEvent):
                status = ev.notification.Status
                if not status.is_good():
                    raise NotConnected(f"{self.cfg.url}: subscription ended: {status.name}")
            if self.lost is not None:
                raise NotConnected(f"{self.cfg.url}: connection lost: {self.lost!r}")
            if next_beat is not None and time.time() >= next_beat:
                now = time.time()
                for name in self.heartbeats:
                    r = self.bands[name].due(now)
                    if r is not None:
                        yield r
                # the earliest any heartbeat can fall due; sends in between only push it later
                next_beat = min((self.bands[n].last.ts if self.bands[n].last else now) + self.bands[n].heartbeat for n in self.heartbeats)
                next_beat = max(next_beat, now + 0.01)

    def _reading(self, n: Node, ev: DataChangeEvent) -> Reading:
        dv = ev.data.monitored_item.Value
        status = dv.StatusCode or ua.StatusCode(ua.StatusCodes.Good)
        ts = _epoch(dv.SourceTimestamp) or _epoch(dv.ServerTimestamp) or time.time()
        if status.is_bad():
            return Reading(n.name, None, ts, "bad", n.unit, status.name, fields={"status_code": status.value})
        raw = ev.value
        if isinstance(raw, float) and not math.isfinite(raw):
            return Reading(n.name, None, ts, "bad", n.unit, f"value is {raw}")
        value, note = plain(raw, self.cfg.max_string, self.cfg.max_array)
        if note:
            self.counters["truncated"] += 1
        reasons = [r for r in (None if status.is_good() else status.name, note) if r]
        quality = "good" if not reasons else "uncertain"
        return Reading(n.name, value, ts, quality, n.unit, "; ".join(reasons) or None)

    @staticmethod
    def _bad(n: Node, reason: str) -> Reading:
        return Reading(n.name, None, time.time(), "bad", n.unit, reason)

    async def aclose(self) -> None:
        client, self.client, self.sub = self.client, None, None
        if client is not None:
            with contextlib.suppress(*LINK_ERRORS):
                await asyncio.wait_for(client.disconnect(), self.cfg.timeout)


def _first_line(path) -> str:
    return path.read_text().splitlines()[0]
