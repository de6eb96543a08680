"""What drivers produce (`Reading`) and what goes upstream (the record, built by `gateway.stamp`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Quality = Literal["good", "bad", "uncertain"]

# Record types. Each becomes the last topic level; `PROTECTED` ones are never discarded on overflow.
TELEMETRY = "telemetry"
SCAN = "scan"
RFID = "rfid"
ALARM = "alarm"
CONTEXT = "context"
PROTECTED = frozenset({SCAN, RFID, ALARM, CONTEXT})


@dataclass(slots=True)
class Reading:
    """One value from one device, as the driver saw it.

    `ts` is when the device produced it (epoch seconds, UTC). A device-level fault is a reading with
    `quality="bad"` and a `reason`, never an exception. `fields` carries type-specific keys (decoded
    scan fields, RFID counts …) that are merged into the record; `raw` keeps the bytes as received.
    """

    tag: str
    value: Any
    ts: float = field(default_factory=time.time)
    quality: Quality = "good"
    unit: str | None = None
    reason: str | None = None
    type: str = TELEMETRY
    raw: bytes | None = None
    fields: dict[str, Any] | None = None
    # Called by the supervisor with the record's outcome (status, reason_code, …) once the row is
    # committed: how a scanner's good/bad beep waits for durability, never for the network.
    ack: Callable[[dict[str, Any]], Awaitable[None]] | None = None
