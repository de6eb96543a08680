"""Context commands: the one schema every entry (MQTT, control socket, CLI) is held to, signed MQTT
commands, and the decision to apply an MQTT command or refuse it with a reason.

An MQTT command is refused, with nothing applied, a reply on the gateway's reply topic, a
`command_rejected` log line and a count per reason in `status`, when it is:

- retained (a broker would hand it over again after every reconnect and undo an operator's fix);
- larger than MAX_BYTES, not JSON, or not exactly of the schema (`Command`: unknown keys included);
- with a key configured: unsigned, badly signed, older or newer than `commands.max_age`, or an id
  already seen within that window;
- for a station this gateway does not serve, or refused by the station's state machine.

Signed framing (works on MQTT 3.1.1, which has no user properties): the exact command bytes, a
newline, then `hmac-sha256=<64 hex digits>`, the HMAC-SHA256 of those bytes under the shared key.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
import structlog
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import Traced, describe
from gateway.station import ids
from gateway.station.context import MAX_OPERATORS, Change

log = structlog.get_logger("gateway.station.commands")

MAX_BYTES = 64 * 1024  # a whole command, signature included
MAX_LIST = 1000  # entries of one list in `extra`
MAX_REASON = 200
MAX_ERROR = 400  # characters of a refusal's text in a reply
SIGNATURE = b"hmac-sha256="
_HEX64 = re.compile(rb"[0-9a-f]{64}")
ALIASES = {"set": "start", "clear": "end"}


def _ident(value: str) -> str:
    if (why := ids.problem(value)) is not None:
        raise ValueError(why)
    return value


def _text(value: str) -> str:
    if any(c < " " or c == "\x7f" for c in value):
        raise ValueError("contains a control character")
    return value


Ident = Annotated[str, AfterValidator(_ident)]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON), AfterValidator(_text)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Extra(Model):
    """What the station's scan rules read from an MES-set context (gateway.station.scan.rules)."""

    bom: list[Ident] | None = Field(default=None, max_length=MAX_LIST, description="Item codes (GTINs or text) the order may consume; replaces the local BOM.")
    blocked_lots: list[Ident] | None = Field(default=None, max_length=MAX_LIST, description="Lots on hold: `lot` or `gtin,lot`; added to the local list.")


class Request(Model):
    """A context change, whoever asks for it."""

    action: Literal["start", "set", "update", "end", "clear", "login", "logout"]
    work_order: Ident | None = None
    operation: Ident | None = None
    lot: Ident | None = None
    operators: list[Ident] | None = Field(default=None, max_length=MAX_OPERATORS)
    extra: Extra | None = None
    reason: Reason | None = None

    def change(self, source: str, actor: str) -> Change:
        return Change(
            action=ALIASES.get(self.action, self.action),  # type: ignore[arg-type]
            source=source,  # type: ignore[arg-type]
            work_order=self.work_order,
            operation=self.operation,
            lot=self.lot,
            operators=tuple(self.operators) if self.operators is not None else None,
            extra=self.extra.model_dump(exclude_none=True) if self.extra is not None else None,
            reason=self.reason,
            actor=actor,
        )


class Command(Request):
    """An MES command (the payload on `<station>/cmd/context`). `id` and `ts` are required when signed."""

    id: Ident | None = None
    ts: float | None = Field(default=None, ge=0, allow_inf_nan=False)  # Unix seconds


class ControlRequest(Request):
    """A `context` request on the control socket."""

    cmd: Literal["context"]
    station: Ident | None = None


class Refused(Exception):
    """A command not applied; `reason` is its class (counted in status), the text says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def explain(exc: ValidationError) -> str:
    """The first problems of a validation, one short clause each, without echoing the input."""
    errors = exc.errors()
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(p)[:64] for p in e["loc"]) or "payload"
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    return "; ".join(parts)[:MAX_ERROR]


def parse(model: type[Model], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refused("invalid", explain(exc)) from None


def control_request(req: dict[str, Any]) -> ControlRequest:
    """Validate a control-socket request; Refused when it is not exactly of the schema."""
    if len(orjson.dumps(req)) > MAX_BYTES:
        raise Refused("too_large", f"request larger than {MAX_BYTES} bytes")
    return parse(ControlRequest, req)


# --- signatures -----------------------------------------------------------------------------------


def sign(key: bytes, body: bytes) -> bytes:
    """The signed framing of `body` (what an MES publishes)."""
    return body + b"\n" + SIGNATURE + hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def unframe(payload: bytes) -> tuple[bytes, bytes | None]:
    """Split a payload into (command bytes, signature hex or None when unsigned)."""
    body, _, last = payload.rstrip(b"\r\n").rpartition(b"\n")
    if last.startswith(SIGNATURE):
        return body, last[len(SIGNATURE) :]
    return payload, None


class Guard:
    """Signature, freshness and replay checks under one shared key."""

    def __init__(self, key: bytes, max_age: float, clock: Callable[[], float] = time.time):
        self.key = key
        self.max_age = max_age
        self.clock = clock
        self.seen: set[str] = set()
        self._expiry: list[tuple[float, str]] = []  # heap of (when its ts stops being fresh, id)

    def verify(self, body: bytes, sig: bytes | None) -> None:
        if sig is None:
            raise Refused("unsigned", "commands must be signed (a last line hmac-sha256=<hex>)")
        good = hmac.new(self.key, body, hashlib.sha256).hexdigest().encode()
        if not (_HEX64.fullmatch(sig) and hmac.compare_digest(sig, good)):
            raise Refused("bad_signature", "the signature does not match the command under the configured key")

    def admit(self, cmd: Command) -> None:
        """Refuse a stale or replayed command; remember its id while it is fresh."""
        if cmd.id is None or cmd.ts is None:
            raise Refused("invalid", "a signed command needs id and ts")
        now = self.clock()
        if abs(now - cmd.ts) > self.max_age:
            raise Refused("stale", f"ts is {now - cmd.ts:.0f} s from the gateway's clock; at most {self.max_age:g} s are accepted")
        while self._expiry and self._expiry[0][0] < now:
            self.seen.discard(heapq.heappop(self._expiry)[1])
        if cmd.id in self.seen:
            raise Refused("replayed", f"command id {cmd.id} was already received")
        self.seen.add(cmd.id)
        heapq.heappush(self._expiry, (cmd.ts + self.max_age, cmd.id))


# --- MQTT commands --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Incoming:
    """An MQTT message on a command topic, as the publisher received it."""

    topic: str
    payload: bytes
    retain: bool = False
    response_topic: str | None = None  # MQTT 5 properties
    correlation: bytes | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    topic: str
    payload: bytes
    correlation: bytes | None = None


Apply = Callable[[str, Change], Awaitable[dict[str, Any]]]


class Commands:
    """Decides about MQTT commands for one gateway and says so on its reply topic.

    Replies go to `<base>/_gateway/<gateway id>/reply`, below the gateway's own topics so that a
    broker ACL can let it publish there; an MQTT 5 response topic is used only when it lies below
    `<base>/_gateway/<gateway id>/`, so a command cannot make the gateway publish anywhere else.
    """

    def __init__(self, base: str, gateway_id: str, stations: list[str], apply: Apply, guard: Guard | None = None, enabled: bool = True):
        self.base = base
        self.gateway_id = gateway_id
        self.stations = frozenset(stations)
        self.apply = apply
        self.guard = guard
        self.enabled = enabled
        self.own = f"{base}/_gateway/{gateway_id}/"
        self.reply_topic = self.own + "reply"
        self.accepted = 0
        self.rejected = 0
        self.reasons: dict[str, int] = {}
        self._retained_logged: set[tuple[str, str]] = set()
        self._traced = Traced()  # failure sites whose traceback is logged

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "signed": self.guard is not None,
            "reply_topic": self.reply_topic,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reasons": dict(self.reasons),
        }

    async def on_message(self, msg: Incoming) -> Reply | None:
        if not msg.payload:
            return None  # how a retained command is cleared from the broker: nothing to apply or refuse
        digest = hashlib.sha256(msg.payload).hexdigest()[:16]
        cid: str | None = None
        station = self._station(msg.topic)
        try:
            if station is None:
                raise Refused("unknown_station", f"not a command topic of a station of this gateway ({self.base}/<station>/cmd/context)")
            if not self.enabled:
                raise Refused("disabled", "commands are disabled on this gateway (commands.enabled: false)")
            if msg.retain:
                raise Refused("retained", "retained commands are never applied; publish it without retain (and clear the retained one with an empty retained message)")
            cmd = self._decode(msg.payload)
            cid = cmd.id
            if self.guard is not None:
                self.guard.admit(cmd)
            actor = f"mes:{cid or 'sha256:' + digest}/{'unsigned' if self.guard is None else 'signed'}"
            rsp = await self.apply(station, cmd.change("mes", actor))
            if not rsp["ok"]:
                raise Refused(rsp.get("code") or "refused", rsp["error"])
        except Refused as exc:
            self._count(exc.reason)
            self._log(msg, station, cid, digest, exc)
            return self._reply(msg, station, cid, digest, {"ok": False, "reason": exc.reason, "error": str(exc)[:MAX_ERROR]})
        except Exception as exc:  # noqa: BLE001 - one message's boundary: a bug here must not end the MQTT session
            # (a queued or retained message would then crash every reconnect and block delivery).
            self._count("internal_error")
            first = self._traced.first(exc)
            log.error("command_failed", topic=msg.topic[:256], station=station, id=cid, sha256=digest, error=describe(exc, MAX_ERROR), exc_info=exc if first else None)
            return self._reply(msg, station, cid, digest, {"ok": False, "reason": "internal_error", "error": "internal error in the gateway; see its log"})
        self.accepted += 1
        ctx = rsp["context"]
        return self._reply(msg, station, cid, digest, {"ok": True, "context_id": ctx["context_id"], "context_version": ctx["version"]})

    def _station(self, topic: str) -> str | None:
        head, _, station = topic.removesuffix("/cmd/context").rpartition("/")
        return station if head == self.base and topic.endswith("/cmd/context") and station in self.stations else None

    def _decode(self, payload: bytes) -> Command:
        if len(payload) > MAX_BYTES:
            raise Refused("too_large", f"command of {len(payload)} bytes; at most {MAX_BYTES} are accepted")
        body, sig = unframe(payload)
        if self.guard is not None:
            self.guard.verify(body, sig)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Refused("not_json", f"not JSON: {exc}"[:MAX_ERROR]) from None
        if not isinstance(data, dict):
            raise Refused("invalid", "a command is a JSON object")
        return parse(Command, data)

    def _count(self, reason: str) -> None:
        self.rejected += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def _log(self, msg: Incoming, station: str | None, cid: str | None, digest: str, exc: Refused) -> None:
        if exc.reason == "retained":
            # The broker hands a retained command over again on every (re)subscription: say it once.
            if (msg.topic, digest) in self._retained_logged:
                return
            if len(self._retained_logged) > 10_000:
                self._retained_logged.clear()
            self._retained_logged.add((msg.topic, digest))
        log.warning("command_rejected", topic=msg.topic[:256], station=station, id=cid, sha256=digest, reason=exc.reason, error=str(exc)[:MAX_ERROR])

    def _reply(self, msg: Incoming, station: str | None, cid: str | None, digest: str, outcome: dict[str, Any]) -> Reply:
        body = {"gateway_id": self.gateway_id, "station": station, "id": cid, "sha256": digest, **outcome, "ts": time.time()}
        topic = self.reply_topic
        rt = msg.response_topic
        if rt and rt.startswith(self.own) and len(rt) <= 512 and not set(rt) & {"+", "#", "\0"}:
            topic = rt
        return Reply(topic, orjson.dumps(body), msg.correlation)
