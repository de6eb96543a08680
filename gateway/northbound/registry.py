"""The northbound sinks a gateway can run: a discriminated union on `kind`, the only registry.

Each config class names its sink's `kind`, carries a `name` (the sink's cursor in the capture
log; a sink new to a file starts with what the others have not delivered yet) and builds
its sink with `build(cfg, …)`. A new sink is one module plus one line here.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from gateway.device import NAME
from gateway.northbound.settings import MqttConfig
from gateway.northbound.sparkplug.config import SparkplugConfig


class JsonSinkConfig(MqttConfig):
    """Records as JSON on the gateway's UNS topics (`<prefix>/<site>/<area>/<line>/<station>/<device>/<type>`)."""

    kind: Literal["mqtt"] = "mqtt"
    name: str = Field(default="mqtt", pattern=NAME, description="The sink's name: its cursor in the capture log.")

    def build(self, cfg, on_command=None):
        from gateway.northbound.mqtt import JsonSink

        return JsonSink(cfg, self, on_command)


SinkConfig = Annotated[Union[JsonSinkConfig, SparkplugConfig], Field(discriminator="kind")]
