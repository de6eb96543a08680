"""Identifiers a station context carries: work order, operation, lot, operator.

They end up in every record the station produces, so each is bounded and restricted to one
documented character set wherever it enters (scan, CLI, control socket, MQTT command): GS1's
character set 82 without the space, the characters a GS1 label can carry in an alphanumeric field
such as a batch/lot (AI 10). 1 to 64 characters.
"""

from __future__ import annotations

import re

MAX_LEN = 64
# GS1 General Specifications, figure 7.11-1 (CSET 82), less the space.
CHARSET = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_VALID = re.compile("[" + re.escape(CHARSET) + "]{1,%d}" % MAX_LEN)
FIELDS = ("work_order", "operation", "lot", "operator")


def problem(value: object) -> str | None:
    """Why `value` is not a valid identifier, or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_LEN:
        return f"is {len(value)} characters long; at most {MAX_LEN} are allowed"
    if _VALID.fullmatch(value) is None:
        bad = next(c for c in value if c not in CHARSET)
        return f"contains {bad!r}; allowed are letters, digits and {CHARSET.translate(str.maketrans('', '', 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'))}"
    return None


def check(field: str, value: object) -> str:
    """Return `value` when it is a valid identifier; raise ValueError naming `field` otherwise."""
    why = problem(value)
    if why is not None:
        raise ValueError(f"{field} {why}")
    return value  # type: ignore[return-value]
