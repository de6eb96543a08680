"""Every example under config/ loads, builds its drivers, and every driver README's YAML validates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gateway.config import Config, load
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.yaml"))
READMES = [ROOT / "drivers" / d / "README.md" for d in ("modbus", "opcua", "env_sensor")] + [ROOT / "simulators" / "README.md"]


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
