"""Station context: which work order, operation and lot a station is running, and who works there.

State machine per station::

    IDLE --start--> ACTIVE --update/login/logout--> ACTIVE --end--> IDLE
                    ACTIVE --start(other work order)--> (end, then start): a changeover

Rules kept here, as a pure state machine (persistence is the capture log's job):
- Every accepted change bumps `version` and yields journal events; a record stamped with
  (context_id, version) is never rewritten by a later change.
- `context_id` names one activation (one run of a work order at a station); it changes only on start.
- An MES (or CLI) setting is authoritative: a scan that would replace or end it is refused with a
  reason (`ContextRefused`); the MES itself may always change it.
- A station with no active work order is IDLE: readings there are *unassigned*, never attached to the
  previous order.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from gateway.station import ids

Source = Literal["scan", "mes", "cli"]
AUTHORITATIVE = frozenset({"mes", "cli"})


class ContextRefused(Exception):
    """A change that the rules refuse; `code` is the reason code put on the scan record."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Context:
    station: str
    state: Literal["idle", "active"] = "idle"
    context_id: str | None = None
    version: int = 0
    source: str | None = None
    work_order: str | None = None
    operation: str | None = None
    lot: str | None = None
    operators: tuple[str, ...] = ()
    started_at: float | None = None
    ended_at: float | None = None
    # MES-provided extras (e.g. bill of materials) the scan rules may consult.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state == "active"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["operators"] = list(self.operators)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Context:
        d = dict(d)
        d["operators"] = tuple(d.get("operators") or ())
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Change:
    """A requested change. `action` is one of start, update, end, login, logout."""

    action: Literal["start", "update", "end", "login", "logout"]
    source: Source
    work_order: str | None = None
    operation: str | None = None
    lot: str | None = None
    operators: tuple[str, ...] | None = None
    extra: dict[str, Any] | None = None
    reason: str | None = None
    # Who asked: `cli:uid=1000(alice)`, `mes:<command id>/signed`, `scan:<device>`; set by the entry, never by the request.
    actor: str | None = None

    def by(self, actor: str) -> Change:
        return replace(self, actor=actor)


@dataclass(frozen=True, slots=True)
class Event:
    """One journal entry: what happened (`event`) and the context after it."""

    event: Literal["started", "updated", "ended", "operator_in", "operator_out"]
    context: Context
    source: str
    reason: str | None = None
    actor: str | None = None


def apply(cur: Context, ch: Change, now: float | None = None) -> tuple[Context, list[Event]]:
    """Apply a change; return the new context and the events to journal (empty when nothing changed)."""
    now = time.time() if now is None else now
    _check(ch)
    if ch.source not in AUTHORITATIVE and cur.active and cur.source in AUTHORITATIVE:
        if ch.action == "end" or (ch.action == "start" and ch.work_order != cur.work_order):
            raise ContextRefused(
                "mes_authoritative",
                f"work order {cur.work_order} was set by the {cur.source}; a scan cannot replace or end it",
            )
    events: list[Event] = []
    if ch.action == "start":
        if not ch.work_order:
            raise ContextRefused("missing_work_order", "start needs a work order")
        if cur.active and cur.work_order == ch.work_order:
            return _update(cur, ch, now)
        if cur.active:
            cur, ended = _end(cur, ch, now)
            events += ended
        new = Context(
            station=cur.station,
            state="active",
            context_id=uuid.uuid4().hex[:16],
            version=cur.version + 1,
            source=ch.source,
            work_order=ch.work_order,
            operation=ch.operation,
            lot=ch.lot,
            # Operators logged in stay logged in across a changeover: they are at the station, not the order.
            operators=tuple(ch.operators) if ch.operators is not None else cur.operators,
            started_at=now,
            extra=dict(ch.extra or {}),
        )
        events.append(Event("started", new, ch.source, ch.reason, ch.actor))
        return new, events
    if ch.action == "end":
        if not cur.active:
            return cur, []
        return _end(cur, ch, now)
    if ch.action == "update":
        if not cur.active:
            raise ContextRefused("no_active_order", "no active work order to update")
        return _update(cur, ch, now)
    if ch.action in ("login", "logout"):
        ops = list(cur.operators)
        changed = []
        for op in ch.operators or ():
            if ch.action == "login" and op not in ops:
                ops.append(op)
                changed.append(op)
            elif ch.action == "logout" and op in ops:
                ops.remove(op)
                changed.append(op)
        if not changed:
            return cur, []
        new = replace(cur, operators=tuple(ops), version=cur.version + 1)
        kind = "operator_in" if ch.action == "login" else "operator_out"
        return new, [Event(kind, new, ch.source, ch.reason, ch.actor)]
    raise ValueError(f"unknown action {ch.action!r}")


MAX_OPERATORS = 16  # people logged in at one station at once


def _check(ch: Change) -> None:
    """Every identifier that enters a context is bounded, whatever the entry (scan, CLI, MES)."""
    for name in ("work_order", "operation", "lot"):
        value = getattr(ch, name)
        if value is not None and (why := ids.problem(value)) is not None:
            raise ContextRefused("invalid_identifier", f"{name} {why}")
    if ch.operators is not None:
        if len(ch.operators) > MAX_OPERATORS:
            raise ContextRefused("invalid_identifier", f"{len(ch.operators)} operators; at most {MAX_OPERATORS} at one station")
        for op in ch.operators:
            if (why := ids.problem(op)) is not None:
                raise ContextRefused("invalid_identifier", f"operator {why}")


def _update(cur: Context, ch: Change, now: float) -> tuple[Context, list[Event]]:
    new = replace(
        cur,
        operation=ch.operation if ch.operation is not None else cur.operation,
        lot=ch.lot if ch.lot is not None else cur.lot,
        operators=tuple(ch.operators) if ch.operators is not None else cur.operators,
        extra={**cur.extra, **(ch.extra or {})},
        source=ch.source if ch.source in AUTHORITATIVE else cur.source,
    )
    if new == cur:
        return cur, []
    new = replace(new, version=cur.version + 1)
    return new, [Event("updated", new, ch.source, ch.reason, ch.actor)]


def _end(cur: Context, ch: Change, now: float) -> tuple[Context, list[Event]]:
    ended = replace(cur, state="idle", version=cur.version + 1, ended_at=now, source=ch.source)
    idle = Context(station=cur.station, version=ended.version, operators=cur.operators)
    return idle, [Event("ended", ended, ch.source, ch.reason, ch.actor)]
