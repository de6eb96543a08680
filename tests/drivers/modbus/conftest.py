from __future__ import annotations

import pytest

from simulators.modbus import ModbusSim
from tests.drivers.readings import take  # noqa: F401 - used by the tests here


@pytest.fixture
async def sim():
    async with ModbusSim(port=0, moving=False) as s:
        yield s
