"""Modbus device configs: `modbus` (TCP, one unit) and `modbus_rtu` (one serial bus, several units).

Addresses are 0-based protocol addresses. The 5/6-digit reference notation (40001 = holding 0) is
accepted only in its own field, `register`, so a plain `address: 40001` is never silently reinterpreted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from drivers.common.config import Limits, Plausible, TagRules
from gateway.kit import TAG_NAME, DeviceBase, Strict

Table = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "bit", "bool"]
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4, "float32": 2, "float64": 4, "bit": 1, "bool": 1}
# reference-number prefix -> table (0xxxx coils, 1xxxx discrete inputs, 3xxxx input, 4xxxx holding)
REFERENCE = {0: "coil", 1: "discrete", 3: "input", 4: "holding"}




class Tag(TagRules):
    """One value read from the device."""

    name: str = Field(pattern=TAG_NAME, description="Tag name; the `tag` field of its readings.")
    table: Table = Field(default="holding", description="Modbus table: holding/input registers, coils or discrete inputs.")
    address: int = Field(ge=0, le=65535, description="0-based protocol address (holding register 40001 is address 0).")
    type: DataType = Field(
        default="uint16",
        description="How the register(s) decode: int16 … float64 (1, 2 or 4 registers), string (`length` chars), "
        "bit (one bit of a register, see `bit`); coils and discrete inputs are bool.",
    )
    bit: int | None = Field(default=None, ge=0, le=15, description="For type bit: bit number in the register, 0 = least significant.")
    length: int | None = Field(default=None, ge=1, le=250, description="For type string: characters (2 per register).")
    encoding: Literal["ascii", "latin-1", "utf-8"] = Field(default="ascii", description="For type string: character encoding.")
    word_order: Literal["big", "little"] = Field(default="big", description="big: high word first (ABCD); little: low word first (CDAB).")
    byte_order: Literal["big", "little"] = Field(default="big", description="big: high byte first in each register; little swaps them (BADC/DCBA).")
    scale: float = Field(default=1.0, allow_inf_nan=False, description="value = raw * scale + offset (numeric types only).")
    offset: float = Field(default=0.0, allow_inf_nan=False, description="value = raw * scale + offset (numeric types only).")
    unit: str | None = Field(default=None, description="Engineering unit put on the readings.")

    @model_validator(mode="before")
    @classmethod
    def _reference_number(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "register" not in data:
            return data
        data = dict(data)
        ref = data.pop("register")
        if "address" in data or "table" in data:
            raise ValueError("register: give either `register` (e.g. 40001) or `table` and `address`, not both")
        if not isinstance(ref, int) or isinstance(ref, bool) or not 1 <= ref <= 465536:
            raise ValueError(f"register: {ref!r} is not a reference number such as 40001 or 400001")
        base = 100000 if ref >= 100000 else 10000
        table = REFERENCE.get(ref // base)
        if table is None or ref % base == 0:
            raise ValueError(f"register: {ref} is not a reference number (0xxxx coil, 1xxxx discrete, 3xxxx input, 4xxxx holding)")
        data["table"], data["address"] = table, ref % base - 1
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Tag:
        bits = self.table in ("coil", "discrete")
        if bits and self.type not in ("bool", "uint16"):
            raise ValueError(f"type: {self.type} makes no sense for a {self.table}; coils and discrete inputs are bool")
        if not bits and self.type == "bool":
            raise ValueError("type: bool is for coils and discrete inputs; use type bit with `bit:` for one bit of a register")
        if (self.type == "bit") != (self.bit is not None):
            raise ValueError("bit: required with type bit, and only with it")
        if (self.type == "string") != (self.length is not None):
            raise ValueError("length: required with type string, and only with it")
        if self.address + self.width > 65536:
            raise ValueError(f"address: {self.address} + {self.width} registers runs past 65535")
        return self

    @property
    def width(self) -> int:
        """Registers (or bits, for coils and discrete inputs) the tag occupies."""
        if self.table in ("coil", "discrete"):
            return 1
        if self.type == "string":
            return (self.length + 1) // 2
        return WIDTH[self.type]


class PollGroup(Strict):
    interval: float = Field(gt=0, description="Seconds between polls of this group.")
    tags: list[Tag] = Field(min_length=1, description="Tags polled together.")


def _unique(names: list[str]) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"tag names must be unique within a device: {', '.join(dup)}")


class ModbusConfig(DeviceBase):
    """A Modbus TCP device (PLC, gateway, meter). A timeout means the link is lost (the supervisor reconnects)."""

    kind: Literal["modbus"]
    host: str = Field(description="PLC host name or address.")
    port: int = Field(default=502, ge=1, le=65535, description="TCP port.")
    unit: int = Field(default=1, ge=0, le=255, description="Unit (slave) id.")
    timeout: float = Field(default=1.0, gt=0, description="Seconds to wait for each response.")
    max_gap: int = Field(default=8, ge=0, le=100, description="Unused registers between tags still read in one request (cheaper than a second request).")
    max_registers: int = Field(default=125, ge=1, le=125, description="Most registers per read request (some devices accept fewer than the protocol's 125).")
    polls: list[PollGroup] = Field(min_length=1, description="Poll groups, each with its own interval.")

    @model_validator(mode="after")
    def _unique_tags(self) -> ModbusConfig:
        _unique([t.name for g in self.polls for t in g.tags])
        return self

    def build(self):
        from drivers.modbus.driver import Modbus

        return Modbus.tcp(self)


# --- RTU ------------------------------------------------------------------------------------------

# Sensor board profiles: the registers a cheap RS-485 board exposes, so a user gives only unit and interval.
PROFILES: dict[str, list[dict[str, Any]]] = {
    # XY-MD02 / SHT20 boards: input register 1 = temperature x10 (signed), 2 = humidity x10
    "xy-md02": [
        {"name": "temperature", "table": "input", "address": 1, "type": "int16", "scale": 0.1, "unit": "degC",
         "plausible": {"min": -40, "max": 125}},
        {"name": "humidity", "table": "input", "address": 2, "type": "uint16", "scale": 0.1, "unit": "%",
         "plausible": {"min": 0, "max": 100}},
    ],
}


class ProfileTag(Strict):
    """Per-tag rules added to a profile's tag (e.g. alarm limits on the temperature)."""

    deadband: float | None = Field(default=None, ge=0, description="As for any tag: report-by-exception band.")
    heartbeat: float | None = Field(default=None, gt=0, description="As for any tag: resend an unchanged value after this many seconds.")
    limits: Limits | None = Field(default=None, description="Warning and alarm limits.")
    plausible: Plausible | None = Field(default=None, description="Replaces the profile's plausibility range.")


class Unit(Strict):
    """One device on the bus: explicit poll groups, or a sensor `profile` with an `interval`."""

    unit: int = Field(ge=1, le=247, description="Unit (slave) id on the bus.")
    name: str | None = Field(default=None, pattern=TAG_NAME, description="For profiles: prefix of the tag names (`<name>.temperature`); default `unit<id>`.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds to wait for this unit's answers; default: the bus timeout.")
    profile: Literal["xy-md02"] | None = Field(default=None, description="A known sensor board; its tags are read without listing them.")
    interval: float | None = Field(default=None, gt=0, description="With `profile`: seconds between readings.")
    tags: dict[str, ProfileTag] = Field(default_factory=dict, description="With `profile`: extra rules per profile tag, by its short name (e.g. temperature).")
    polls: list[PollGroup] = Field(default_factory=list, description="Poll groups (without `profile`).")

    @model_validator(mode="after")
    def _profile_or_polls(self) -> Unit:
        if self.profile:
            if self.polls or self.interval is None:
                raise ValueError("a unit with `profile` takes `interval` and no `polls`")
            unknown = set(self.tags) - {t["name"] for t in PROFILES[self.profile]}
            if unknown:
                raise ValueError(f"tags: {', '.join(sorted(unknown))} not in profile {self.profile}")
        elif not self.polls or self.interval is not None or self.tags:
            raise ValueError("a unit without `profile` needs `polls` (and no `interval` or `tags`)")
        return self

    def groups(self) -> list[PollGroup]:
        if not self.profile:
            return list(self.polls)
        prefix = self.name or f"unit{self.unit}"
        tags = []
        for spec in PROFILES[self.profile]:
            extra = self.tags.get(spec["name"])
            merged = {**spec, **(extra.model_dump(exclude_none=True) if extra else {})}
            tags.append(Tag.model_validate({**merged, "name": f"{prefix}.{spec['name']}"}))
        return [PollGroup(interval=self.interval, tags=tags)]


class ModbusRtuConfig(DeviceBase):
    """A Modbus RTU bus (RS-485) on one serial port: several units, one request at a time.

    A unit that does not answer makes only its own readings bad; a port that fails is a lost link.
    """

    kind: Literal["modbus_rtu"]
    port: str = Field(description="Serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/…")
    baudrate: int = Field(default=9600, ge=300, le=1_000_000, description="Bits per second.")
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="Parity: N none, E even, O odd.")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits.")
    timeout: float = Field(default=0.5, gt=0, description="Seconds to wait for a unit's answer.")
    max_gap: int = Field(default=8, ge=0, le=100, description="Unused registers between tags still read in one request.")
    max_registers: int = Field(default=125, ge=1, le=125, description="Most registers per read request.")
    units: list[Unit] = Field(min_length=1, description="The devices on the bus.")

    @model_validator(mode="after")
    def _unique(self) -> ModbusRtuConfig:
        ids = [u.unit for u in self.units]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"unit ids must be unique on a bus: {', '.join(map(str, dup))}")
        _unique([t.name for u in self.units for g in u.groups() for t in g.tags])
        return self

    def build(self):
        from drivers.modbus.driver import Modbus

        return Modbus.rtu(self)
