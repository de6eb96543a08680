"""Start-up checks of the daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway import config
from gateway.daemon import missing_parts

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_optional_dependency_is_named_with_its_extra(monkeypatch):
    cfg = config.load(ROOT / "config" / "scanners.yaml")
    assert missing_parts(cfg) == []
    for name in [m for m in sys.modules if m == "evdev" or m.startswith("evdev.") or m.startswith("drivers.scanner_evdev.driver")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "evdev", None)  # what an install without the extra looks like to import
    problems = missing_parts(cfg)
    assert problems and all("shopfloor-gateway[scanners]" in p for p in problems)
    assert any("wedge1" in p for p in problems)
