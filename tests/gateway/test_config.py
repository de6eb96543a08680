"""Configuration errors point at file, line and field; `run` and `check-config` exit 78 on them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import config
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
gateway:
  id: gw1
  site: plant1
  area: assembly
  line: line1
  stations: [st10, st20]
mqtt:
  host: 127.0.0.1
  port: 1883
buffer:
  path: /tmp/x.db
devices:
  - kind: synthetic
    name: load
    station: st10
    rate: 10
  - kind: modbus
    name: plc1
    station: st20
    host: 127.0.0.1
    port: 5020
    polls:
      - interval: 1
        tags:
          - {name: temp, address: 0, type: float32}
"""


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        config.parse(text, "gw.yaml")
    return exc.value.problems


def test_good_config_parses():
    cfg = config.parse(GOOD, "gw.yaml")
    assert [d.name for d in cfg.devices] == ["load", "plc1"]
    assert cfg.station_of(cfg.devices[1]) == "st20"


def test_wrong_type_names_file_line_and_field():
    (p,) = problems(GOOD.replace("port: 5020", "port: fifty"))
    assert p.startswith("gw.yaml:21: devices[1].port: ") and "'fifty'" in p


def test_unknown_key_names_file_line_and_field():
    (p,) = problems(GOOD.replace("    rate: 10\n", "    rate: 10\n    rat: 5\n"))
    assert p.startswith("gw.yaml:17: devices[0].rat: unknown field")


def test_missing_required_key_points_at_its_parent():
    (p,) = problems(GOOD.replace("  host: 127.0.0.1\n  port: 1883\n", "  port: 1883\n"))
    assert p == "gw.yaml:7: mqtt.host: required field is missing"


def test_every_problem_is_reported_at_once():
    text = GOOD.replace("port: 5020", "port: fifty").replace("rate: 10", "rate: -1").replace("type: float32", "type: float33")
    ps = problems(text)
    assert len(ps) == 3
    assert any("devices[1].polls[0].tags[0].type" in p and ":25:" in p for p in ps)


def test_unknown_device_kind_is_named():
    (p,) = problems(GOOD.replace("kind: synthetic", "kind: synthetik"))
    assert "gw.yaml:13: devices[0]" in p and "synthetik" in p


def test_cross_checks_point_at_the_line():
    (p,) = problems(GOOD.replace("station: st20", "station: st30"))
    assert p.startswith("gw.yaml:19: devices[1].station: 'st30' is not one of gateway.stations")
    (p,) = problems(GOOD.replace("name: plc1", "name: load"))
    assert p.startswith("gw.yaml:18: devices[1].name:") and "used twice" in p


def test_yaml_syntax_error_has_a_line():
    (p,) = problems(GOOD.replace("  area: assembly", "  area: [assembly"))
    assert p.startswith("gw.yaml:") and "YAML syntax error" in p


@pytest.mark.parametrize(
    "change",
    [
        ("port: 5020", "port: fifty"),  # wrong type
        ("    rate: 10\n", "    rate: 10\n    bogus: 1\n"),  # unknown key
        ("  host: 127.0.0.1\n  port: 1883\n", "  port: 1883\n"),  # missing required key
    ],
)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_bad_config_exits_78_with_file_and_line(tmp_path, change, command):
    f = tmp_path / "gw.yaml"
    f.write_text(GOOD.replace(*change))
    r = cli(command, str(f)) if command == "check-config" else cli("run", "-c", str(f))
    assert r.returncode == 78, r.stderr
    assert f"{f}:" in r.stderr and r.stderr.split(":")[1].isdigit()


def test_check_config_ok_and_missing_file(tmp_path):
    f = tmp_path / "gw.yaml"
    f.write_text(GOOD)
    r = cli("check-config", str(f))
    assert r.returncode == 0 and "ok" in r.stdout
    r = cli("check-config", str(tmp_path / "nope.yaml"))
    assert r.returncode == 78 and "cannot read" in r.stderr


def test_unreadable_password_file_exits_78_at_start(tmp_path):
    f = tmp_path / "gw.yaml"
    f.write_text(GOOD.replace("  port: 1883\n", f"  port: 1883\n  username: gw\n  password_file: {tmp_path}/missing\n").replace("/tmp/x.db", str(tmp_path / "b.db")))
    r = cli("run", "-c", str(f))
    assert r.returncode == 78 and "password" in r.stderr


def test_print_schema_is_json_schema_with_descriptions():
    r = cli("print-schema")
    schema = json.loads(r.stdout)
    assert r.returncode == 0 and "devices" in schema["properties"]
    assert schema["$defs"]["MqttConfig"]["properties"]["max_pack"]["description"]


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_loads(path):
    config.load(path)


NORTHBOUND = """\
northbound:
  - {kind: mqtt, name: plant, host: 127.0.0.1}
  - {kind: mqtt, name: plant, host: 10.0.0.9, port: 8883x}
"""


def test_sinks_are_checked_like_devices():
    text = GOOD.replace("mqtt:\n  host: 127.0.0.1\n  port: 1883\n", NORTHBOUND)
    ps = problems(text)
    assert any(p.startswith("gw.yaml:9: northbound[1].port: ") for p in ps), ps
    (p,) = problems(text.replace("port: 8883x", "port: 8883"))
    assert p.startswith("gw.yaml:9: northbound[1].name:") and "used twice" in p
    cfg = config.parse(text.replace("port: 8883x", "port: 8883").replace("name: plant, host: 10", "name: site, host: 10"), "gw.yaml")
    assert [s.name for s in cfg.northbound] == ["plant", "site"] and cfg.mqtt is cfg.northbound[0]


def test_mqtt_is_short_for_one_json_sink_and_excludes_northbound():
    cfg = config.parse(GOOD, "gw.yaml")
    assert [(s.kind, s.name, s.host) for s in cfg.northbound] == [("mqtt", "mqtt", "127.0.0.1")]
    (p,) = problems(GOOD.replace("buffer:\n", NORTHBOUND.replace(", port: 8883x", "").replace("name: plant, host: 10", "name: b, host: 10") + "buffer:\n"))
    assert "either mqtt:" in p and "not both" in p
    (p,) = problems(GOOD.replace("mqtt:\n  host: 127.0.0.1\n  port: 1883\n", ""))
    assert "northbound: (or mqtt:) is required" in p
