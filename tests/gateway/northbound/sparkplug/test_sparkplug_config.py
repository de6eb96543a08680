"""The sink's settings: ids Sparkplug accepts, the edge node and station devices it builds."""

from __future__ import annotations

import pytest
import yaml

from gateway import config
from gateway.errors import ConfigError
from gateway.northbound.sparkplug.config import SparkplugConfig
from gateway.northbound.sparkplug.sink import SparkplugSink


def load(tmp_path, sink: dict, devices=()):
    doc = {
        "gateway": {"id": "gw-a", "site": "p", "area": "a", "line": "l", "stations": ["st10", "st20"]},
        "northbound": [{"kind": "sparkplug", "host": "127.0.0.1", **sink}],
        "buffer": {"path": str(tmp_path / "b.db")},
        "devices": list(devices),
    }
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(doc))
    return config.load(path)


def test_the_edge_node_defaults_to_the_gateway_id_and_stations_get_their_devices(tmp_path):
    cfg = load(tmp_path, {"group_id": "plant1"})
    sink = cfg.northbound[0].build(cfg)
    assert isinstance(sink, SparkplugSink) and sink.node == "gw-a" and sink.name == "sparkplug"
    assert sink.stations == {"st10": "station-st10", "st20": "station-st20"}
    assert sink.topics["DDATA"] == "spBv1.0/plant1/DDATA/gw-a"
    assert sink.health()["state"] == "starting" and sink.health()["primary_host"] is None


@pytest.mark.parametrize("field", ["group_id", "edge_node_id", "primary_host_id"])
@pytest.mark.parametrize("bad", ["a/b", "a+", "#", ""])
def test_ids_with_mqtt_separators_or_wildcards_are_refused(tmp_path, field, bad):
    sink = {"group_id": "plant1", field: bad}
    with pytest.raises(ConfigError) as e:
        load(tmp_path, sink)
    assert field in str(e.value)


def test_a_station_device_named_like_a_device_is_refused_at_build(tmp_path):
    dev = {"kind": "synthetic", "name": "station-st10", "station": "st10", "rate": 1, "tags": 1}
    cfg = load(tmp_path, {"group_id": "plant1"}, [dev])
    with pytest.raises(ConfigError, match="station-st10"):
        cfg.northbound[0].build(cfg)


def test_qos_2_is_refused():
    with pytest.raises(ValueError, match="data_qos"):
        SparkplugConfig(host="h", group_id="g", data_qos=2)
