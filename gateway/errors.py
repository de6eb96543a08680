"""The gateway's error tree.

Only bugs and `DriverFatal` leave a supervisor; everything else is a state change it handles.
"""

from __future__ import annotations

import traceback


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
    """The capture log cannot store records (disk full, database corrupt)."""


class PublishError(GatewayError):
    """Upstream publishing failed."""


class Retryable(PublishError):
    """The broker connection failed; the records stay in the capture log and are sent again."""


class Rejected(PublishError):
    """The broker or the encoder refused a message for good; its rows go to the dead-letter table."""


def describe(exc: BaseException, limit: int = 300) -> str:
    """`Type: message`, bounded: a library's message may carry a whole frame."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Traced:
    """Where unexpected exceptions came from, for the containment boundaries: the traceback is logged
    the first time a site is seen, so a part that fails the same way on every retry cannot flood the
    journal. A site is the exception's type and innermost frame (few: they are lines of code)."""

    def __init__(self) -> None:
        self._seen: set[tuple] = set()

    def first(self, exc: BaseException, *key: object) -> bool:
        tb = traceback.extract_tb(exc.__traceback__)
        site = (*key, type(exc).__name__, *((tb[-1].filename, tb[-1].lineno) if tb else ()))
        if site in self._seen:
            return False
        self._seen.add(site)
        return True
