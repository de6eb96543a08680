"""Read windows: a tag is read many times a second; keep one window per tag.

First sight is reported at once; repeats fold into `read_count`, `rssi_max`, `last_seen`; the window
closes when the tag has not been seen for `hold` seconds (or after `max_window` seconds in all), and
its summary is reported then. Invariant: every read lands in exactly one window.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Window:
    key: str
    first_seen: float
    last_seen: float
    read_count: int = 1
    rssi_max: int | None = None
    antennas: set[int] = field(default_factory=set)

    def summary(self) -> dict:
        return {
            "read_count": self.read_count,
            "rssi_max": self.rssi_max,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "antennas": sorted(self.antennas),
        }


class Windows:
    def __init__(self, hold: float, max_window: float | None = None):
        self.hold, self.max_window = hold, max_window
        self.open: dict[str, Window] = {}

    def read(self, key: str, now: float, rssi: int | None = None, antenna: int | None = None) -> Window | None:
        """Record one read; return the new window on first sight, None for a repeat."""
        w = self.open.get(key)
        if w is not None and now - w.last_seen <= self.hold and (self.max_window is None or now - w.first_seen < self.max_window):
            w.read_count += 1
            w.last_seen = now
            if rssi is not None and (w.rssi_max is None or rssi > w.rssi_max):
                w.rssi_max = rssi
            if antenna:
                w.antennas.add(antenna)
            return None
        w = Window(key, now, now, 1, rssi, {antenna} if antenna else set())
        self.open[key] = w
        return w

    def close_due(self, now: float) -> list[Window]:
        """Windows whose tag went away (or that ran `max_window`); they are removed."""
        due = [w for w in self.open.values() if now - w.last_seen > self.hold or (self.max_window is not None and now - w.first_seen >= self.max_window)]
        for w in due:
            del self.open[w.key]
        return due

    def close_all(self) -> list[Window]:
        due, self.open = list(self.open.values()), {}
        return due
