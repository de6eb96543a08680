"""Every example under config/ loads, builds its drivers, and every registered driver's README (found
through the registry, so a new driver is checked without being listed here) has examples that validate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gateway.config import Config, load
from gateway.errors import ConfigError
from gateway.ops import samples

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.yaml"))
READMES = sorted({samples.readme(cls) for cls in samples.kinds().values()}) + [ROOT / "simulators" / "README.md"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_and_builds(path):
    cfg = load(path)
    for dev in cfg.devices:
        assert dev.build() is not None


@pytest.mark.parametrize("path", READMES, ids=lambda p: p.parent.name)
def test_readme_device_examples_validate(path):
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)]
    devices = [d for b in blocks if isinstance(b, dict) and "devices" in b for d in b["devices"]]
    assert devices, f"{path} has no example config"
    Config.model_validate({"gateway": {"id": "gw", "site": "s", "area": "a", "line": "l", "stations": ["st"]},
                           "mqtt": {"host": "127.0.0.1"}, "devices": devices})


def test_errors_point_at_file_line_and_field(tmp_path):
    text = (ROOT / "config" / "modbus-rtu.yaml").read_text().replace("type: float64", "type: float65", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(bad)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "float65" in l)
    assert any(p.startswith(f"{bad}:{line}: devices[0].polls[0].tags[7].type") for p in err.value.problems), err.value.problems


def test_the_core_names_no_driver_kind():
    """What the core needs to know about a driver is declared on its config class: no lists of kinds
    outside the registry, so an eighth driver is one folder plus one line in gateway/registry.py."""
    kinds = list(samples.kinds())
    for path in (ROOT / "gateway").rglob("*.py"):
        if path.name == "registry.py":
            continue
        text = path.read_text()
        assert not [k for k in kinds if f'"{k}"' in text or f"'{k}'" in text], path


def test_declarations_say_which_extra_and_which_rules():
    k = samples.kinds()
    assert {n for n, c in k.items() if c.scan_rules} == {"scanner_serial", "scanner_evdev", "rfid_serial"}
    assert k["opcua"].extra == "opcua" and k["scanner_evdev"].extra == "scanners" and k["modbus"].extra is None
