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
from drivers.rfid_serial.config import RfidSerialConfig
from drivers.scanner_evdev.config import ScannerEvdevConfig
from drivers.scanner_serial.config import ScannerSerialConfig
from drivers.synthetic.config import SyntheticConfig

DeviceConfig = Annotated[
    Union[  # noqa: UP007 - a Union reads better as the registry
        ModbusConfig,
        ModbusRtuConfig,
        OpcUaConfig,
        EnvSensorConfig,
        SyntheticConfig,
        ScannerSerialConfig,
        ScannerEvdevConfig,
        RfidSerialConfig,
    ],
    Field(discriminator="kind"),
]
