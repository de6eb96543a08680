"""`env_sensor` devices: exactly one of `serial` (a line-printing sensor) or `onewire` (DS18B20 via sysfs).

Modbus RTU sensor boards are a profile of `modbus_rtu` (see drivers/modbus), not of this kind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from drivers.common.config import TagRules
from gateway.kit import TAG_NAME, DeviceBase, Strict


class TagSettings(TagRules):
    unit: str | None = Field(default=None, description="Engineering unit put on the readings.")


class Serial(Strict):
    """A sensor that prints one line per reading; each named group of `pattern` is a tag."""

    port: str = Field(description="Serial device, e.g. /dev/ttyUSB1.")
    baudrate: int = Field(default=9600, ge=300, le=1_000_000, description="Bits per second.")
    pattern: str = Field(
        default=r"T=(?P<temperature>-?\d+(?:\.\d+)?),H=(?P<humidity>\d+(?:\.\d+)?)",
        description="Regular expression matched against each line (stripped); every named group is a numeric tag.",
    )
    stale_after: float = Field(default=10.0, gt=0, description="Seconds without a good line after which the tags go bad (sensor silent).")
    max_line: int = Field(default=256, ge=16, le=65536, description="Longest line in bytes; a longer one is garbage.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            rx = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if not rx.groupindex:
            raise ValueError("needs at least one named group, e.g. (?P<temperature>-?\\d+\\.\\d+)")
        return v


class Probe(Strict):
    id: str = Field(pattern=r"^28-[0-9a-f]{12}$", description="1-Wire id of the DS18B20 (folder name under the sysfs root).")
    name: str = Field(pattern=TAG_NAME, description="Tag name of its readings.")


class OneWire(Strict):
    """DS18B20 probes read through the kernel's w1_therm driver."""

    root: Path = Field(default=Path("/sys/bus/w1/devices"), description="sysfs folder holding the `28-*` sensor folders.")
    interval: float = Field(default=10.0, ge=1, description="Seconds between reads (a conversion takes up to 750 ms per probe).")
    probes: list[Probe] = Field(min_length=1, description="The probes to read.")


class EnvSensorConfig(DeviceBase):
    """Temperature/humidity sensors on a serial line or a 1-Wire bus."""

    environment: ClassVar[bool] = True
    kind: Literal["env_sensor"]
    serial: Serial | None = Field(default=None, description="A serial ASCII sensor.")
    onewire: OneWire | None = Field(default=None, description="DS18B20 probes on 1-Wire.")
    tags: dict[str, TagSettings] = Field(
        default_factory=dict, description="Unit, deadband, limits and plausibility per tag name (pattern group or probe name)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnvSensorConfig:
        if (self.serial is None) == (self.onewire is None):
            raise ValueError("give exactly one of `serial` or `onewire`")
        names = self.names()
        unknown = sorted(set(self.tags) - set(names))
        if unknown:
            raise ValueError(f"tags: {', '.join(unknown)} not produced by this sensor (it has {', '.join(names)})")
        if len(set(names)) != len(names):
            raise ValueError("tag names must be unique within a device")
        return self

    def names(self) -> list[str]:
        if self.serial:
            return list(re.compile(self.serial.pattern).groupindex)
        return [p.name for p in self.onewire.probes]

    def build(self):
        if self.serial:
            from drivers.env_sensor.serial import AsciiSensor

            return AsciiSensor(self)
        from drivers.env_sensor.onewire import OneWireBus

        return OneWireBus(self)
