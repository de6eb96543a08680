from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from gateway.kit import DeviceBase

# Honeywell host-ACK mode (Xenon/Granit/Voyager): ESC 7 , = good read accepted, ESC 8 , = error.
HONEYWELL_GOOD = "\x1b7,"
HONEYWELL_BAD = "\x1b8,"


class ScannerSerialConfig(DeviceBase):
    """A barcode scanner on a serial port (RS-232 or USB-CDC)."""

    extra: ClassVar[str | None] = "scanners"
    scan_rules: ClassVar[bool] = True

    kind: Literal["scanner_serial"]
    port: Path = Field(description="Serial port; prefer the stable /dev/serial/by-id/… path.")
    baudrate: int = Field(default=9600, description="Line speed.")
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="Parity.")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits.")
    framing: Literal["line", "suffix", "stx_etx"] = Field(
        default="line", description="line: a scan ends at CR or LF (CR LF counts once); suffix: at `suffix`; stx_etx: STX … ETX."
    )
    suffix: str = Field(default="\r", description="Terminator for `framing: suffix` (escapes allowed in YAML double quotes).")
    prefix: str = Field(default="", description="Prefix the scanner puts before each scan; removed, and a scan without it is an error.")
    max_length: int = Field(default=4096, ge=16, description="Longest scan in bytes; a longer run without terminator is an error.")
    partial_timeout: float = Field(default=0.5, gt=0, description="Seconds of silence after which an unfinished scan is dropped and counted.")
    tag: str = Field(default="scan", description="The `tag` of the scan records.")
    feedback: Literal["none", "honeywell", "custom"] = Field(
        default="none", description="Good/bad signal sent back to the scanner: honeywell = host-ACK mode (ESC 7 , / ESC 8 ,)."
    )
    feedback_good: str | None = Field(default=None, description="Bytes for a good scan with `feedback: custom` (Latin-1).")
    feedback_bad: str | None = Field(default=None, description="Bytes for a bad scan with `feedback: custom` (Latin-1).")

    @model_validator(mode="after")
    def _custom_needs_bytes(self) -> ScannerSerialConfig:
        if self.feedback == "custom" and not (self.feedback_good and self.feedback_bad):
            raise ValueError("feedback: custom needs feedback_good and feedback_bad")
        if self.framing == "suffix" and not self.suffix:
            raise ValueError("framing: suffix needs a non-empty suffix")
        return self

    @property
    def feedback_bytes(self) -> tuple[bytes, bytes] | None:
        if self.feedback == "honeywell":
            return HONEYWELL_GOOD.encode("latin-1"), HONEYWELL_BAD.encode("latin-1")
        if self.feedback == "custom":
            return self.feedback_good.encode("latin-1"), self.feedback_bad.encode("latin-1")
        return None

    def build(self):
        from drivers.scanner_serial.driver import ScannerSerial

        return ScannerSerial(self)
