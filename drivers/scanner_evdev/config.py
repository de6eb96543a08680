from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from gateway.kit import DeviceBase


class ScannerEvdevConfig(DeviceBase):
    """A keyboard-wedge (USB HID keyboard) barcode scanner read through evdev."""

    extra: ClassVar[str | None] = "scanners"
    scan_rules: ClassVar[bool] = True

    kind: Literal["scanner_evdev"]
    path: Path = Field(
        description="Stable device path: /dev/input/by-id/usb-<vendor>_<serial>-event-kbd, or /dev/input/by-path/… "
        "for scanners without a USB serial number (they collide in by-id as `noserial`)."
    )
    layout: str = Field(default="us", description="Keyboard layout the scanner emulates: us, de, fr, gb (extend with `keymap`).")
    keymap: dict[str, list[str | None]] = Field(
        default_factory=dict,
        description="Per-key overrides of the layout: {KEY_NAME: [plain, shift, altgr, shift+altgr]} (evdev key names).",
    )
    tab: Literal["terminator", "data", "ignore"] = Field(default="terminator", description="What Tab means: end of scan, a TAB character, or nothing.")
    key_timeout: float = Field(default=0.5, gt=0, description="Seconds between two keys after which an unfinished scan is stale: dropped and counted.")
    grab: bool = Field(default=True, description="Grab the device (EVIOCGRAB) so scans never reach the desktop or a login prompt.")
    capslock_from_led: bool = Field(default=True, description="Start with the CapsLock state the device's LED shows.")
    tag: str = Field(default="scan", description="The `tag` of the scan records.")

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        from drivers.scanner_evdev.keymap_names import LAYOUT_NAMES

        if value not in LAYOUT_NAMES:
            raise ValueError(f"unknown layout {value!r}; known: {', '.join(LAYOUT_NAMES)} (add keys with `keymap`)")
        return value

    def build(self):
        try:
            from drivers.scanner_evdev.driver import ScannerEvdev
        except ImportError as exc:
            from gateway.kit import ConfigError

            raise ConfigError([f"device {self.name}: scanner_evdev needs evdev ({exc.name} missing): pip install shopfloor-gateway[scanners]"]) from None
        return ScannerEvdev(self)
