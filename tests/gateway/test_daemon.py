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


def test_an_unusable_buffer_path_is_a_clear_error(tmp_path):
    import subprocess

    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "gateway: {id: gw1, site: s, area: a, line: l, stations: [st1]}\n"
        "mqtt: {host: 127.0.0.1, port: 1}\n"
        "buffer: {path: /proc/nonexistent/buffer.db}\n"
    )
    r = subprocess.run([sys.executable, "-m", "gateway", "run", "-c", str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 69
    assert "buffer.path /proc/nonexistent/buffer.db: cannot use it" in r.stderr and "Traceback" not in r.stderr
