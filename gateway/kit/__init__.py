"""The driver kit: everything a driver may take from the gateway, and nothing else.

Drivers import from here only (a test holds them to it), never from the capture path's modules or
the station's scan rules: a driver holds device logic, and the core can be reshaped behind this.
"""

from __future__ import annotations

from gateway.device import TAG_NAME, DeviceBase, Strict
from gateway.errors import BackOff, ConfigError, DriverFatal, NotConnected
from gateway.kit.feedback import Feedback, Outcome, fanout, tone
from gateway.kit.histogram import PERIOD_BUCKETS, Histogram
from gateway.kit.text import text_of
from gateway.model import ALARM, RFID, SCAN, TELEMETRY, Quality, Reading
from gateway.ticker import every

__all__ = [
    "ALARM", "PERIOD_BUCKETS", "RFID", "SCAN", "TAG_NAME", "TELEMETRY",
    "BackOff", "ConfigError", "DeviceBase", "DriverFatal", "Feedback", "Histogram", "NotConnected", "Outcome",
    "Quality", "Reading", "Strict", "every", "fanout", "text_of", "tone",
]
