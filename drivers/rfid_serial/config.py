from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gateway.kit import DeviceBase


class RfidSerialConfig(DeviceBase):
    """An RFID reader on a serial port: a CF-RU / UHFReader288 UHF reader (polled) or an RDM6300-style
    125 kHz badge reader (sends by itself)."""

    extra: ClassVar[str | None] = "scanners"
    scan_rules: ClassVar[bool] = True

    kind: Literal["rfid_serial"]
    protocol: Literal["cfru", "rdm6300"] = Field(description="cfru: UHF EPC tags, polled; rdm6300: 125 kHz badges.")
    port: Path = Field(description="Serial port; prefer the stable /dev/serial/by-id/… path.")
    baudrate: int | None = Field(default=None, description="Line speed; default 57600 for cfru, 9600 for rdm6300.")
    address: int = Field(default=0xFF, ge=0, le=0xFF, description="cfru: reader address (0xFF: broadcast).")
    antennas: list[int] | None = Field(
        default=None,
        description="cfru: antennas (1-16) to inventory in turn with the UHFReader288 command; "
        "absent: the short command on the reader's current antenna(s).",
    )
    scan_time: int = Field(default=3, ge=1, le=255, description="cfru: inventory time per antenna in units of 100 ms.")
    poll_interval: float = Field(default=0.2, gt=0, description="cfru: seconds between inventory rounds.")
    response_timeout: float = Field(default=1.0, gt=0, description="cfru: seconds to wait for an answer.")
    max_missed: int = Field(default=3, ge=1, description="cfru: unanswered inventories in a row that count as a lost link.")
    hold: float = Field(
        default=2.0, gt=0, description="Seconds without a read after which a tag's read window closes (it left the field)."
    )
    max_window: float | None = Field(default=None, gt=0, description="Close a window after this many seconds even if the tag stays.")
    report: Literal["first_and_summary", "first", "summary"] = Field(
        default="first_and_summary",
        description="What a read window produces: a reading at first sight, a summary (read_count, rssi_max, first/last seen) when it closes, or both.",
    )
    tag: str | None = Field(default=None, description="The `tag` of the readings; default `rfid` (cfru) or `badge` (rdm6300).")

    @model_validator(mode="after")
    def _antennas(self) -> RfidSerialConfig:
        if self.antennas is not None and (not self.antennas or any(not 1 <= a <= 16 for a in self.antennas)):
            raise ValueError("antennas: give antenna numbers 1 to 16")
        return self

    @property
    def effective_baudrate(self) -> int:
        return self.baudrate or (57600 if self.protocol == "cfru" else 9600)

    def build(self):
        from drivers.rfid_serial.driver import Cfru, Rdm6300

        return Cfru(self) if self.protocol == "cfru" else Rdm6300(self)
