"""Operator feedback: the good/bad signal a scan's outcome produces.

A feedback output is any async callable taking the outcome dict that the supervisor hands to
`Reading.ack` once the record is committed (`{"status", "reason_code", "message"}`). The scanner's
own beeper (host-ACK), a stack light, a screen or an MQTT event implement the same one-method shape,
and `fanout` joins several. Outputs handle their own expected failures (e.g. a scanner unplugged
between scan and answer): feedback never blocks or breaks capture.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, Protocol

Tone = Literal["good", "bad"]
Outcome = dict[str, Any]
# Statuses that give the good tone; everything else (rejected, unassigned, duplicate) gives the bad one.
GOOD = frozenset({"accepted", "warning"})


class Feedback(Protocol):
    async def __call__(self, outcome: Outcome) -> None: ...


def tone(outcome: Outcome) -> Tone:
    return "good" if outcome.get("status") in GOOD else "bad"


def fanout(*outputs: Feedback) -> Feedback:
    """One feedback that drives all `outputs` at once."""

    async def signal(outcome: Outcome) -> None:
        await asyncio.gather(*(out(outcome) for out in outputs))

    return signal
