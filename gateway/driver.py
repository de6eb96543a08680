"""The driver protocol: device logic only; retries, timing and health live in the supervisor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from gateway.model import Reading


class Driver(Protocol):
    """One physical connection (one PLC endpoint, one serial port, one scanner).

    - `connect()` raises `NotConnected` (retry with backoff) or `DriverFatal` (stop this device).
    - `readings()` yields readings until the link drops, then raises `NotConnected`. A driver that
      reads many values at once (a poll) yields them as one list: the core stores a poll as one row.
    - `aclose()` releases the connection; it is called after every attempt, successful or not.

    Drivers never sleep to retry and never log per poll.
    """

    async def connect(self) -> None: ...

    def readings(self) -> AsyncIterator[Reading | list[Reading]]: ...

    async def aclose(self) -> None: ...


def each(got: Reading | list[Reading]) -> Sequence[Reading]:
    """What `readings()` yielded, as readings: one, or the readings of a poll."""
    return got if type(got) is list else (got,)
