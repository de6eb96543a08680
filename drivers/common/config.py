"""Per-tag rule settings shared by the drivers' tag models (flattened into each tag in YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.kit import Strict


class Limits(Strict):
    """Alarm limits. `low`/`high` raise warnings, `low_low`/`high_high` raise alarms."""

    low_low: float | None = Field(default=None, description="Below this: alarm (severity alarm).")
    low: float | None = Field(default=None, description="Below this: warning.")
    high: float | None = Field(default=None, description="Above this: warning.")
    high_high: float | None = Field(default=None, description="Above this: alarm (severity alarm).")
    hysteresis: float = Field(
        default=0.0, ge=0, description="A raised limit clears only once the value is back inside by this much (stops chatter)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        given = [(n, getattr(self, n)) for n in ("low_low", "low", "high", "high_high") if getattr(self, n) is not None]
        if not given:
            raise ValueError("give at least one of low_low, low, high, high_high")
        for (a, va), (b, vb) in zip(given, given[1:]):
            if va >= vb:
                raise ValueError(f"limits must rise: {a} ({va}) is not below {b} ({vb})")
        return self


class Plausible(Strict):
    """What the sensor can physically report; anything else is a fault, not a value."""

    min: float | None = Field(default=None, description="Lowest plausible value; below it the reading is bad.")
    max: float | None = Field(default=None, description="Highest plausible value; above it the reading is bad.")
    stuck_after: float | None = Field(
        default=None, gt=0, description="Seconds a value may stay exactly the same before it counts as stuck (bad)."
    )


class TagRules(Strict):
    """Report-by-exception, limits and plausibility of one tag. Every field is optional."""

    deadband: float | None = Field(
        default=None, ge=0, description="Send a new value only when it differs from the last sent one by more than this; 0 sends changes only. Absent: every sample is sent."
    )
    deadband_mode: Literal["absolute", "percent"] = Field(
        default="absolute", description="absolute: in engineering units; percent: of the last sent value's magnitude."
    )
    heartbeat: float | None = Field(
        default=None, gt=0, description="Seconds after which an unchanged (or within-deadband) value is sent anyway, so consumers see the tag is alive."
    )
    limits: Limits | None = Field(default=None, description="Low/high warning and alarm limits; crossings become alarm records.")
    plausible: Plausible | None = Field(default=None, description="Plausibility range and stuck-value detection.")
