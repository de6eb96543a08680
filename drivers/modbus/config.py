from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.device import DeviceBase

Table = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "bool"]
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "bool": 1}


class Tag(BaseModel):
    """One value read from the device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="Tag name; the `tag` field of its readings.")
    table: Table = Field(default="holding", description="Modbus table: holding/input registers, coils or discrete inputs.")
    address: int = Field(ge=0, le=65535, description="0-based protocol address (register 40001 is holding address 0).")
    type: DataType = Field(default="uint16", description="How the register(s) decode; coils and discrete inputs are always bool.")
    word_order: Literal["big", "little"] = Field(default="big", description="big: high word first (ABCD); little: low word first (CDAB).")
    byte_order: Literal["big", "little"] = Field(default="big", description="big: high byte first in each register; little swaps them (BADC/DCBA).")
    scale: float = Field(default=1.0, description="value = raw * scale + offset")
    offset: float = Field(default=0.0, description="value = raw * scale + offset")
    unit: str | None = Field(default=None, description="Engineering unit put on the readings.")

    @model_validator(mode="after")
    def _bits_are_bool(self) -> Tag:
        if self.table in ("coil", "discrete") and self.type not in ("bool", "uint16"):
            raise ValueError(f"type: {self.type} makes no sense for a {self.table}; coils and discrete inputs are bool")
        if self.table in ("holding", "input") and self.type == "bool":
            raise ValueError("type: bool is for coils and discrete inputs")
        return self

    @property
    def width(self) -> int:
        return 1 if self.table in ("coil", "discrete") else WIDTH[self.type]


class PollGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: float = Field(gt=0, description="Seconds between polls of this group.")
    tags: list[Tag] = Field(min_length=1, description="Tags polled together.")


class ModbusConfig(DeviceBase):
    """A Modbus TCP device (PLC, gateway, meter)."""

    kind: Literal["modbus"]
    host: str = Field(description="PLC host name or address.")
    port: int = Field(default=502, ge=1, le=65535, description="TCP port.")
    unit: int = Field(default=1, ge=0, le=255, description="Unit (slave) id.")
    timeout: float = Field(default=1.0, gt=0, description="Seconds to wait for each response.")
    max_gap: int = Field(default=8, ge=0, le=100, description="Unused registers between tags still read in one request (cheaper than a second request).")
    polls: list[PollGroup] = Field(min_length=1, description="Poll groups, each with its own interval.")

    @model_validator(mode="after")
    def _unique_tags(self) -> ModbusConfig:
        names = [t.name for g in self.polls for t in g.tags]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"tag names must be unique within a device: {', '.join(dup)}")
        return self

    def build(self):
        from drivers.modbus.driver import Modbus

        return Modbus(self)
