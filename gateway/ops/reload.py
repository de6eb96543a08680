"""Reload: what a new configuration file changes in a running gateway, worked out before anything moves.

Devices are reloaded one by one: a changed or new device starts, a removed one stops, an untouched
one keeps running without a gap. Everything else the gateway set up at start (its identity, the
buffer, the broker connection, the MES commands' settings, the stations and their contexts, the control socket, the HTTP server)
needs a restart: a reload that touches those is refused, naming each setting, and changes nothing.
The buffer is never touched by a reload, so no row is lost or sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.config import Config

RESTART_SECTIONS = ("gateway", "mqtt", "commands", "buffer", "control", "http")


@dataclass
class Plan:
    restart: list[str] = field(default_factory=list)  # settings that differ and need a restart
    stop: list[str] = field(default_factory=list)  # devices to stop (removed or changed)
    start: list[Any] = field(default_factory=list)  # device configs to start (new or changed)
    kept: list[str] = field(default_factory=list)
    log_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.stop or self.start or self.log_changed)

    def to_json(self) -> dict[str, Any]:
        started = {d.name for d in self.start}
        return {
            "started": sorted(started - set(self.stop)),
            "restarted": sorted(started & set(self.stop)),
            "stopped": sorted(set(self.stop) - started),
            "unchanged": sorted(self.kept),
        }


def plan(old: Config, new: Config) -> Plan:
    p = Plan()
    for section in RESTART_SECTIONS:
        p.restart += [f"{section}.{path}" if path else section for path in _differences(_dump(old, section), _dump(new, section))]
    p.log_changed = old.log != new.log
    before = {d.name: d for d in old.devices}
    after = {d.name: d for d in new.devices}
    for name, d in before.items():
        if name not in after or after[name] != d or old.station_of(d) != new.station_of(after[name]):
            if d.enabled:
                p.stop.append(name)
        else:
            p.kept.append(name)
    for name, d in after.items():
        if d.enabled and (name not in before or name in p.stop or not before[name].enabled):
            p.start.append(d)
    return p


def _dump(cfg: Config, section: str) -> Any:
    value = getattr(cfg, section)
    return value.model_dump(mode="json") if value is not None else None


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths where two dumped settings differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out += _differences(a.get(key), b.get(key), sub)
        return out
    return [] if a == b else [path]
