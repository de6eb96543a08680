"""Station-level scan settings (`gateway.stations[].scan`): what the station's barcodes mean and how
material scans are validated."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from gateway.device import Strict

Command = Literal["end", "logout_all"]




def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class Patterns(Strict):
    """Regular expressions (full match, after the AIM identifier is removed) tried before GS1 decoding.

    Named groups carry values: `work_order` and `operation` for travelers, `badge` for badges, `lot`
    for lot labels; without a group the whole text is the value. Set a pattern to null to turn it off.
    """

    work_order: str | None = Field(default=r"WO-[0-9A-Za-z][0-9A-Za-z._/-]*", description="Traveler / work-order barcode.")
    badge: str | None = Field(default=r"(?:BADGE-)?(?P<badge>\d{10})", description="Operator badge (as typed by a wedge badge reader or printed as barcode).")
    lot: str | None = Field(default=r"LOT:(?P<lot>[0-9A-Za-z._/-]+)", description="Label that sets the lot produced at the station.")
    commands: dict[str, Command] = Field(
        default_factory=lambda: {"CMD:END": "end", "CMD:LOGOUT": "logout_all"},
        description="Exact command barcodes and their action: end (close the work order), logout_all.",
    )

    _check = field_validator("work_order", "badge", "lot")(_regex)


class ScanSettings(Strict):
    """How a station reads and validates scans."""

    patterns: Patterns = Field(default_factory=Patterns, description="What travelers, badges, lot labels and commands look like.")
    separators: list[str] = Field(
        default_factory=list,
        description="Characters the scanners send instead of GS (e.g. '^'); GS itself always separates.",
    )
    auto_separator: bool = Field(
        default=True, description="Retry a broken GS1 message with a stray ^ ~ | { } # @ \\ as separator, and flag it as a warning."
    )
    duplicate_ttl: float = Field(default=600.0, ge=0, description="Seconds a material code counts as duplicate within one work order (0: off).")
    bom_file: Path | None = Field(
        default=None,
        description="Local bill of materials: YAML {work_order: [gtin or code, …]} or CSV rows `work_order,code`. "
        "The MES push (context extra `bom`) takes precedence.",
    )
    require_bom: bool = Field(default=False, description="Reject material when no bill of materials is known for the work order.")
    blocked_lots_file: Path | None = Field(
        default=None, description="Blocked lots, one per line (`lot` or `gtin,lot`); merged with context extra `blocked_lots`."
    )
    expiry_warn_days: int = Field(default=0, ge=0, description="Material expiring within this many days gets status warning.")
    unknown: Literal["rejected", "warning"] = Field(default="rejected", description="Status of a scan that matches nothing.")

    @field_validator("separators")
    @classmethod
    def _one_char(cls, value: list[str]) -> list[str]:
        for s in value:
            if len(s) != 1:
                raise ValueError(f"separator {s!r} must be one character")
        return value
