from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.kit import DeviceBase


class SyntheticConfig(DeviceBase):
    """Generates readings that look like process values; no hardware needed."""

    kind: Literal["synthetic"]
    rate: float = Field(gt=0, le=1_000_000, description="Readings per second, over all tags.")
    tags: int = Field(default=4, ge=1, le=100_000, description="Number of distinct tags, named `tag0`, `tag1`, …")
    unit: str | None = Field(default=None, description="Unit put on every reading.")
    bad_every: int = Field(default=0, ge=0, description="Every n-th reading has bad quality (0: never); exercises bad-quality paths.")
    crash_every: int = Field(
        default=0,
        ge=0,
        description="Raise an unexpected error instead of every n-th reading (0: never); exercises the "
        "supervisor's containment (the device shows as crashed and is restarted, other devices go on).",
    )
    crash_with: Literal["ZeroDivisionError", "EOFError", "IncompleteReadError", "AssertionError", "KeyError"] = Field(
        default="ZeroDivisionError", description="The exception type `crash_every` raises: types no driver lists."
    )
    limit: int | None = Field(default=None, ge=1, description="Stop after this many readings (for benchmarks); endless when absent.")

    def build(self):
        from drivers.synthetic.driver import Synthetic

        return Synthetic(self)
