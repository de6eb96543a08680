"""Settings every device shares; the supervisor reads them, drivers never do."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TAG_NAME = r"^[A-Za-z0-9_.:-]{1,128}$"
# Topic levels the gateway itself uses below a station; a device may not take them.
RESERVED_NAMES = frozenset({"context", "cmd", "_gateway"})


class Strict(BaseModel):
    """Base of every configuration model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceBase(Strict):
    """Common fields of every entry under `devices:`. Each driver's config extends it with `kind`.

    What the core needs to know about a driver is declared here, on its config class (the registry in
    gateway/registry.py holds the classes, nothing else does): `extra`, the optional dependency set
    that `build()` needs (named when it is missing); `scan_rules`, whether its readings go through the
    station's scan rules (scanners, RFID readers); `environment`, whether its readings describe the
    station's surroundings (a trace shows them apart from the process's tags). The driver object
    itself may expose `counters` (a dict of its own event counts, kept by the supervisor across
    reconnects) and `periods` (achieved poll periods per poll group).
    """

    extra: ClassVar[str | None] = None
    scan_rules: ClassVar[bool] = False
    environment: ClassVar[bool] = False

    name: str = Field(pattern=NAME, description="Unique device name; the topic level and the `device` field of every record.")
    station: str | None = Field(
        default=None,
        description="Station the device belongs to; its readings carry that station's context. "
        "May be left out when the gateway has exactly one station.",
    )
    enabled: bool = Field(default=True, description="Set to false to keep the entry but not start the device.")
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds a connection attempt may take.")
    backoff_initial: float = Field(default=0.5, gt=0, description="First retry delay in seconds after a failure.")
    backoff_max: float = Field(default=30.0, gt=0, description="Longest retry delay in seconds; delays double up to it, with jitter.")
    silence_timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds without any reading after which the link counts as lost and is re-opened "
        "(catches readers bridged over a network that go silent without an error). Off by default.",
    )
