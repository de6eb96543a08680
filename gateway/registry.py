"""The one registry of drivers: a discriminated union of their configs on `kind`.

Adding a driver means adding its config class here; nothing scans directories. Each config class
has `build() -> Driver`, which imports any optional dependency and says which extra to install.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from drivers.env_sensor.config import EnvSensorConfig
from drivers.modbus.config import ModbusConfig, ModbusRtuConfig
from drivers.opcua.config import OpcUaConfig
from drivers.synthetic.config import SyntheticConfig

DeviceConfig = Annotated[
    Union[ModbusConfig, ModbusRtuConfig, OpcUaConfig, EnvSensorConfig, SyntheticConfig],  # noqa: UP007 - a Union reads better as the registry
    Field(discriminator="kind"),
]
