"""The search space in the config (``search.space``): Adam's parameters, their ranges (log scale,
``1 - beta``, "off or log" for weight decay), choices, and values pinned with a plain number."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PARAMS = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay")
SEARCHABLE = (*PARAMS, "schedule")  # Adam's arguments, and the lr schedule beside them
ScheduleKind = Literal["none", "exponential", "cosine", "step"]
SCHEDULES: tuple[ScheduleKind, ...] = ("none", "exponential", "cosine", "step")


class Strict(BaseModel):
    """The base of every config model: unknown keys, coercions, inf and nan are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _number_means_fixed(value: Any) -> Any:
    """A plain number in the space fixes the parameter: ``beta2: 0.999``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"fixed": value}
    return value


class _Range(Strict):
    """A float range; ``fixed`` is set when the user wrote a plain number instead."""

    low: float | None = None
    high: float | None = None
    fixed: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_number(cls, value: Any) -> Any:
        return _number_means_fixed(value)

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if self.fixed is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either a fixed value or low/high, not both")
            self._check_value(self.fixed)
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or write a plain number to fix it)")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) must not exceed high ({self.high:g})")
        return self

    def _check_value(self, v: float) -> None:  # overridden per parameter kind
        pass

    @property
    def is_fixed(self) -> bool:
        return self.fixed is not None or self.low == self.high


class LogRange(_Range):
    """lr and eps: sampled log-uniformly, so both ends must be > 0."""

    @field_validator("low", "high")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0 on a log scale (got {v:g})")
        return v

    def _check_value(self, v: float) -> None:
        if v <= 0:
            raise ValueError(f"must be > 0 (got {v:g})")


class LrRange(LogRange):
    """lr: a log range, a fixed value, or ``auto``: the range the LR range test finds (set by
    the search before the first trial; ``low`` and ``high`` then hold the test's ladder)."""

    auto: bool = False

    @model_validator(mode="before")
    @classmethod
    def _auto(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, dict) and value.get("auto") is True):
            # A dumped config gives back its placeholders (and fixed: None): not a conflict.
            held = {"low": AUTO_LADDER[0], "high": AUTO_LADDER[1], "fixed": None}
            given = value.items() if isinstance(value, dict) else []
            extra = {k for k, v in given if k != "auto" and (k not in held or held[k] != v)}
            if extra:
                raise ValueError(
                    f"'auto' sets low and high from the range test; drop {sorted(extra)}"
                )
            return {"auto": True, "low": AUTO_LADDER[0], "high": AUTO_LADDER[1]}
        return value


# The LR range test's default ladder: where an ``lr: auto`` range is looked for.
AUTO_LADDER = (1e-7, 10.0)


class BetaRange(_Range):
    """beta1 and beta2: in [0, 1); sampled as log(1 - beta) so values near 1 get resolution."""

    @field_validator("low", "high", "fixed")
    @classmethod
    def _unit(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v < 1:
            raise ValueError(f"must be >= 0 and < 1 (got {v:g})")
        return v


class DecayRange(_Range):
    """weight_decay: either exactly 0 (when ``zero``) or log-uniform in [low, high]."""

    zero: bool = True

    @field_validator("low", "high")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0 on a log scale (got {v:g}); zero: true already tries 0")
        return v

    def _check_value(self, v: float) -> None:
        if v < 0:
            raise ValueError(f"must be >= 0 (got {v:g})")


def _choices(value: Any) -> Any:
    return [value] if isinstance(value, (bool, str)) else value


class SpaceConfig(Strict):
    lr: LrRange = Field(default_factory=lambda: LrRange(low=1e-5, high=1e-1))
    beta1: BetaRange = Field(default_factory=lambda: BetaRange(low=0.5, high=0.999))
    beta2: BetaRange = Field(default_factory=lambda: BetaRange(low=0.9, high=0.9999))
    eps: LogRange = Field(default_factory=lambda: LogRange(low=1e-10, high=1e-3))
    weight_decay: DecayRange = Field(default_factory=lambda: DecayRange(low=1e-6, high=1e-1))
    amsgrad: list[bool] = Field(default_factory=lambda: [False, True])
    decoupled_weight_decay: list[bool] = Field(default_factory=lambda: [False])
    # Off unless listed: at the default 60 trials its share of the budget cost the other
    # stages more than decay gained (benchmarks/README.md).
    schedule: list[ScheduleKind] = Field(default_factory=lambda: list(SCHEDULES[:1]))

    @field_validator("amsgrad", "decoupled_weight_decay", "schedule", mode="before")
    @classmethod
    def _one_means_list(cls, v: Any) -> Any:
        return _choices(v)

    @field_validator("amsgrad", "decoupled_weight_decay", "schedule")
    @classmethod
    def _non_empty(cls, v: list[Any]) -> list[Any]:
        if not v:
            raise ValueError("must list at least one choice (got an empty list)")
        return list(dict.fromkeys(v))

    def is_searched(self, param: str) -> bool:
        value = getattr(self, param)
        if isinstance(value, list):
            return len(value) > 1
        return not value.is_fixed
