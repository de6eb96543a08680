"""DS18B20 probes through the kernel's w1_therm sysfs files (`<root>/28-…/w1_slave`).

Invariants:
- The value comes from the CRC-checked scratchpad (1/16 °C exact); the kernel's `t=` truncates negative
  values to whole millidegrees and is only cross-checked.
- A value is good only if the kernel said `crc=.. YES`, our own Dallas CRC-8 over the 8 scratchpad
  bytes matches the 9th, and the kernel's `t=` agrees with the scratchpad's temperature bytes.
- 85.000 °C with the power-on scratchpad (0x0550) means the conversion never ran (power glitch,
  parasite power): bad, with that reason. An all-zero scratchpad is a shorted data line: bad.
- A probe that vanished is bad for that probe only; the others keep being read.
- Reading `w1_slave` blocks while the probe converts (up to 750 ms), so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

from drivers.common.rules import Step, chain
from drivers.env_sensor.config import EnvSensorConfig
from gateway.kit import Reading, every

LINE1 = re.compile(r"^((?:[0-9a-f]{2} ){9}): crc=([0-9a-f]{2}) (YES|NO)$")
# w1_therm prints at most 6 digits (-55000..125000); more is not a reading, and int() of thousands
# of digits is slow or refused.
LINE2 = re.compile(r"^((?:[0-9a-f]{2} ){9})t=(-?[0-9]{1,7})$")
POWER_ON = bytes([0x50, 0x05])
MAX_FILE = 4096  # w1_slave is two lines of about 40 bytes; a bigger file is not one


def crc8(data: bytes) -> int:
    """Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1, reflected 0x8C)."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def parse_w1_slave(text: str) -> tuple[float | None, str | None]:
    """(temperature in °C, None) or (None, reason)."""
    lines = text.strip().split("\n")
    if len(lines) != 2:
        return None, f"unreadable w1_slave: {len(lines)} lines"
    m1, m2 = LINE1.match(lines[0].strip()), LINE2.match(lines[1].strip())
    if not m1 or not m2:
        return None, "unreadable w1_slave: unexpected format"
    pad = bytes.fromhex(m1.group(1))
    if m2.group(1) != m1.group(1):
        return None, "unreadable w1_slave: the two lines show different scratchpads"
    if m1.group(3) != "YES":
        return None, f"CRC error: kernel reports crc={m1.group(2)} NO"
    if crc8(pad[:8]) != pad[8]:
        return None, f"CRC error: computed {crc8(pad[:8]):02x}, scratchpad says {pad[8]:02x}"
    if not any(pad):
        return None, "all-zero scratchpad (data line shorted to ground)"
    if pad[:2] == POWER_ON:
        return None, "85 °C power-on value: the conversion did not run (power glitch or parasite power)"
    milli = int(m2.group(2))
    exact = int.from_bytes(pad[:2], "little", signed=True) / 16
    if abs(milli - exact * 1000) >= 1:
        return None, f"t={milli} disagrees with the scratchpad ({exact} °C)"
    # the scratchpad keeps the full 1/16 °C resolution; the kernel's t= truncates it to whole millidegrees
    return exact, None


class OneWireBus:
    def __init__(self, cfg: EnvSensorConfig):
        self.ow = cfg.onewire
        self.units = {p.name: (p.name in cfg.tags and cfg.tags[p.name].unit) or "degC" for p in self.ow.probes}
        self.steps: dict[str, Step] = {p.name: chain(cfg.tags.get(p.name))[0] for p in self.ow.probes}
        self.counters = {"crc_errors": 0, "bad_values": 0, "missing": 0, "read_errors": 0}

    async def connect(self) -> None:
        return None  # the kernel owns the bus; a missing probe is a bad reading, not a lost link

    async def readings(self) -> AsyncIterator[Reading]:
        async for _ in every(self.ow.interval):
            for probe in self.ow.probes:
                r = await asyncio.to_thread(self._read, probe.id, probe.name)
                for out in self.steps[r.tag](r):
                    yield out

    def _read(self, probe_id: str, name: str) -> Reading:
        path = self.ow.root / probe_id / "w1_slave"
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_FILE)
        except FileNotFoundError:
            self.counters["missing"] += 1
            return Reading(name, None, time.time(), "bad", self.units[name], f"probe {probe_id} not present under {self.ow.root}")
        except OSError as exc:
            self.counters["read_errors"] += 1
            return Reading(name, None, time.time(), "bad", self.units[name], f"probe {probe_id}: {exc.strerror}")
        value, reason = parse_w1_slave(raw.decode("ascii", "replace"))
        if reason:
            self.counters["crc_errors" if reason.startswith("CRC error") else "bad_values"] += 1
            return Reading(name, None, time.time(), "bad", self.units[name], reason, raw=raw)
        return Reading(name, value, time.time(), "good", self.units[name])

    async def aclose(self) -> None:
        return None
