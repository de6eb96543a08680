"""The installed version, from the package metadata (one source: pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("shopfloor-gateway")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"
