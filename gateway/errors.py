"""The gateway's error tree (design.md §7).

Only bugs and `DriverFatal` leave a supervisor; everything else is a state change it handles.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration cannot be used. Fatal at start; the process exits with EX_CONFIG (78)."""

    exit_status = 78

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class DriverError(GatewayError):
    """A device-level failure of a driver."""


class NotConnected(DriverError):
    """The link to the device is down or could not be made; the supervisor retries with backoff."""


class BackOff(DriverError):
    """The device asks to be left alone for `wait` seconds (e.g. busy); not counted as a failure."""

    def __init__(self, message: str, wait: float):
        super().__init__(message)
        self.wait = wait


class DriverFatal(DriverError):
    """Retrying cannot help (e.g. wrong credentials, untrusted certificate); the driver stops."""


class BufferError(GatewayError):  # noqa: A001 - the design's name; shadows the builtin only here
    """The outbox cannot store rows (disk full, database corrupt)."""


class PublishError(GatewayError):
    """Upstream publishing failed."""


class Retryable(PublishError):
    """The broker connection failed; the rows stay in the outbox and are sent again."""


class Rejected(PublishError):
    """The broker or the encoder refused a message for good; its rows go to the dead-letter table."""
