"""The northbound sinks a gateway can run: a discriminated union on `kind`, the only registry.

Each config class names its sink's `kind`, carries a `name` (the sink's cursor in the capture
log; keep it stable, or the new name starts with the whole journal still to send) and builds
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


SinkConfig = Annotated[Union[JsonSinkConfig, SparkplugConfig], Field(discriminator="kind")]
