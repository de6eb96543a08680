"""The Sparkplug B sink's settings: the broker (`MqttConfig`) plus the edge node's identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from gateway.device import NAME
from gateway.errors import ConfigError
from gateway.northbound.settings import MqttConfig

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.northbound.sparkplug.sink import SparkplugSink

# Sparkplug ids are UTF-8 without the MQTT separator and wildcards.
SPARKPLUG_ID = r"^[^/#+\s]{1,128}$"


class SparkplugConfig(MqttConfig):
    """Records as Sparkplug B 3.0 (protobuf): the gateway is the edge node, its devices and one device
    per station are the Sparkplug devices."""

    kind: Literal["sparkplug"] = "sparkplug"
    name: str = Field(default="sparkplug", pattern=NAME, description="The sink's name: its cursor in the capture log.")
    group_id: str = Field(pattern=SPARKPLUG_ID, description="Sparkplug group id (first topic level after spBv1.0).")
    edge_node_id: str | None = Field(default=None, pattern=SPARKPLUG_ID, description="Edge node id; default the gateway id.")
    primary_host_id: str | None = Field(
        default=None,
        pattern=SPARKPLUG_ID,
        description="Primary host application id: no births nor data until spBv1.0/STATE/<id> says online; data of the time it was offline follows as historical.",
    )
    host_grace: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="After a reconnect, how long to wait for the primary host to announce itself anew when the only STATE is the retained one already known (a broker restart: the host has not resubscribed yet); then that STATE is trusted.",
    )
    station_device: str = Field(
        default="station-{station}",
        pattern=r"^[^/#+\s]*\{station\}[^/#+\s]*$",
        description="Device id of a station's device (scans, RFID, alarms, context); `{station}` is the station name.",
    )
    data_qos: Literal[0, 1] = Field(
        default=0,
        description="QoS of births, data and deaths of devices. 0 is the specification's; 1 departs from it so that a host with a persistent session gets data across its own reconnects.",
    )

    def build(self, cfg: Config) -> SparkplugSink:
        # Imported here: the sink needs gateway.config, which loads this registry entry first.
        from gateway.northbound.sparkplug.sink import SparkplugSink

        stations = {s.name: self.station_device.format(station=s.name) for s in cfg.gateway.stations}
        taken = {d.name for d in cfg.devices} & set(stations.values())
        if taken:
            raise ConfigError([f"northbound {self.name}: station_device gives {', '.join(sorted(taken))}, already a device's name"])
        return SparkplugSink(self, self.edge_node_id or cfg.gateway.id, stations)
