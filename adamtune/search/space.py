"""How each of Adam's hyperparameters (and the lr schedule) is searched.

Each parameter is searched through one or more *coordinates*, named Optuna parameters with a
distribution suited to Adam: lr and eps log-uniform; beta1 and beta2 as ``1 - beta`` on a log
scale (0.9, 0.99 and 0.999 are equally far apart, as they are in effective averaging horizon);
weight decay as "off, or log-uniform"; amsgrad and decoupled decay as choices. The schedule is
a choice of kind, its end fraction (log-uniform) and a warmup length.

In a staged search every stage after ``lr`` also re-tunes lr within 3x of the incumbent's,
through the coordinate ``lr_factor`` (the pseudo-parameter ``LR_FACTOR`` in a stage's
parameters; the schedule stage adds it itself): lr interacts with every other parameter (a
higher weight decay or a lower beta1 wants another lr), so each comparison is made at the best
lr near the incumbent's, not at the incumbent's own (Google's Deep Learning Tuning Playbook:
lr is the nuisance parameter of nearly every comparison).

A staged study of 60 trials or more ends with a ``local`` stage that draws lr, beta1, beta2
and weight decay together, each within 3x of the incumbent's (``1 - beta`` for the betas;
weight decay only where the incumbent has some): the stages move one group at a time, and the
joint neighbourhood of their pick holds gains none of them can reach alone. Its coordinates
are the factors in ``WINDOWS``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from adamtune.config.space import SEARCHABLE, SpaceConfig
from adamtune.train.params import ADAM_DEFAULTS, AdamParams
from adamtune.train.schedules import (
    DECAYING,
    END_RANGE,
    WARMUPS,
    Schedule,
)

LR_RETUNE = 3.0  # stages after lr re-tune it within this factor of the incumbent's
LR_FACTOR = "lr_factor"  # the pseudo-parameter of a stage that re-tunes lr around the incumbent's
# The pseudo-parameters that move a parameter within LR_RETUNE of the incumbent's, by the
# parameter they move: the local stage draws them together.
WINDOWS = {
    "lr": LR_FACTOR,
    "beta1": "beta1_factor",
    "beta2": "beta2_factor",
    "weight_decay": "weight_decay_factor",
}
_WINDOWED = {factor: param for param, factor in WINDOWS.items()}


class Suggester(Protocol):
    """The part of ``optuna.Trial`` used to draw values."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def searched(space: SpaceConfig) -> list[str]:
    return [p for p in SEARCHABLE if space.is_searched(p)]


def coordinates(
    param: str, space: SpaceConfig, *, with_zero: bool = False, beside: Sequence[str] = ()
) -> dict[str, BaseDistribution]:
    """The Optuna parameters through which ``param`` is searched, when drawn with ``beside``.

    ``with_zero`` adds the on/off switch of weight decay; a staged search leaves it out because
    the incumbent entering the weight-decay stage already has decay off.
    """
    if param in _WINDOWED:
        return {param: _factor()}
    value = getattr(space, param)
    if param == "schedule":
        return _schedule_coordinates(space, retune=_retunes(space, beside, with_zero))
    if isinstance(value, list):
        return {param: CategoricalDistribution(value)}
    if param in ("beta1", "beta2"):
        return {f"one_minus_{param}": FloatDistribution(1 - value.high, 1 - value.low, log=True)}
    dists: dict[str, BaseDistribution] = {}
    if param == "weight_decay" and with_zero and value.zero:
        dists["weight_decay_on"] = CategoricalDistribution([False, True])
    dists[param] = FloatDistribution(value.low, value.high, log=True)
    return dists


def _schedule_coordinates(space: SpaceConfig, *, retune: bool) -> dict[str, BaseDistribution]:
    """The schedule's coordinates: its kind, the end fraction of a decaying kind, the warmup
    and, in a staged search (``retune``), lr as a factor of the incumbent's."""
    dists: dict[str, BaseDistribution] = {"schedule": CategoricalDistribution(space.schedule)}
    if any(kind in DECAYING for kind in space.schedule):
        dists["schedule_end"] = FloatDistribution(*END_RANGE, log=True)
    dists["warmup"] = CategoricalDistribution(WARMUPS)
    if retune:
        dists[LR_FACTOR] = _factor()
    return dists


def _factor() -> FloatDistribution:
    return FloatDistribution(1 / LR_RETUNE, LR_RETUNE, log=True)


def is_window(param: str) -> bool:
    """Whether ``param`` is a pseudo-parameter that moves a value around the incumbent's."""
    return param in _WINDOWED


def windowed(
    base: AdamParams, factor_name: str, factor: float, space: SpaceConfig
) -> dict[str, Any]:
    """The value the window ``factor_name`` at ``factor`` gives on top of ``base``, inside the
    user's range: lr and weight decay times the factor, a beta with ``1 - beta`` times it.
    Weight decay that is off stays off (a factor of nothing is nothing)."""
    param = _WINDOWED[factor_name]
    rng, value = getattr(space, param), getattr(base, param)
    if param in ("beta1", "beta2"):
        return {param: _clip(1.0 - (1.0 - value) * factor, rng)}
    return {param: _clip(value * factor, rng)} if value else {}


def _clip(value: float, rng: Any) -> float:
    low = -math.inf if rng.low is None else rng.low
    return min(max(value, low), math.inf if rng.high is None else rng.high)


def retuned_lr(base: AdamParams, factor: float, space: SpaceConfig) -> float:
    """The incumbent's lr times ``factor``, never outside the user's lr range (nor, with
    ``lr: auto``, above the largest stable lr)."""
    return _clip(base.lr * factor, space.lr)


def _retunes(space: SpaceConfig, params: Sequence[str], joint: bool) -> bool:
    """Whether drawing a schedule re-tunes lr around the incumbent's: in a staged search,
    unless lr is drawn beside it or pinned by the user."""
    return not joint and "lr" not in params and LR_FACTOR not in params and space.is_searched("lr")


def _suggest_schedule(
    trial: Suggester, space: SpaceConfig, base: AdamParams, *, retune: bool
) -> dict[str, Any]:
    kind = trial.suggest_categorical("schedule", list(space.schedule))
    end = 1.0
    if kind in DECAYING:
        end = trial.suggest_float("schedule_end", *END_RANGE, log=True)
    warmup = float(trial.suggest_categorical("warmup", list(WARMUPS)))
    out: dict[str, Any] = {"schedule": Schedule(kind, end, warmup)}
    if retune:
        factor = trial.suggest_float(LR_FACTOR, 1 / LR_RETUNE, LR_RETUNE, log=True)
        out["lr"] = retuned_lr(base, factor, space)
    return out


def suggest(
    trial: Suggester,
    params: list[str],
    space: SpaceConfig,
    *,
    with_zero: bool = False,
    base: AdamParams | None = None,
) -> dict[str, Any]:
    """Draw values for ``params`` from ``trial``; returns Adam values keyed by parameter.
    ``base`` is the incumbent a staged schedule stage re-tunes lr around."""
    out: dict[str, Any] = {}
    for param in params:
        if param in _WINDOWED:
            factor = trial.suggest_float(param, 1 / LR_RETUNE, LR_RETUNE, log=True)
            out.update(windowed(base or ADAM_DEFAULTS, param, factor, space))
            continue
        if param == "schedule":
            retune = _retunes(space, params, with_zero)
            out.update(_suggest_schedule(trial, space, base or ADAM_DEFAULTS, retune=retune))
            continue
        dists = coordinates(param, space, with_zero=with_zero)
        if "weight_decay_on" in dists and not trial.suggest_categorical(
            "weight_decay_on", [False, True]
        ):
            out[param] = 0.0
            continue
        for name, dist in dists.items():
            if name == "weight_decay_on":
                continue
            if isinstance(dist, CategoricalDistribution):
                out[param] = trial.suggest_categorical(name, list(dist.choices))
            else:
                assert isinstance(dist, FloatDistribution)
                drawn = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
                out[param] = 1.0 - drawn if name.startswith("one_minus_") else drawn
    return out


def encode(
    params: AdamParams, names: list[str], space: SpaceConfig, *, with_zero: bool = False
) -> dict[str, tuple[Any, BaseDistribution]]:
    """The coordinate values of ``params`` for ``names``, where they lie in the space.

    Used to record a trial that was not sampled (Adam's defaults, an incumbent) in the same
    coordinates as the sampled ones, so that samplers and ``optuna trials`` can read it.
    """
    out: dict[str, tuple[Any, BaseDistribution]] = {}
    for param in names:
        if param in _WINDOWED:  # an incumbent is at its own values
            out[param] = (1.0, _factor())
            continue
        if param == "schedule":
            retune = _retunes(space, names, with_zero)
            out.update(_encode_schedule(params.schedule, space, retune))
            continue
        value = getattr(params, param)
        for name, dist in coordinates(param, space, with_zero=with_zero).items():
            if name == "weight_decay_on":
                coord: Any = value > 0
            elif name.startswith("one_minus_"):
                coord = 1.0 - value
            else:
                coord = value
            if name == "weight_decay" and value == 0:
                continue
            if _inside(coord, dist):
                out[name] = (coord, dist)
    return out


def _encode_schedule(
    schedule: Schedule, space: SpaceConfig, retune: bool
) -> dict[str, tuple[Any, BaseDistribution]]:
    """A schedule's coordinates; an incumbent's lr is its own (``lr_factor`` 1)."""
    out: dict[str, tuple[Any, BaseDistribution]] = {}
    coords = {"schedule": schedule.kind, "warmup": schedule.warmup, LR_FACTOR: 1.0}
    if schedule.decays:
        coords["schedule_end"] = schedule.end
    for name, dist in _schedule_coordinates(space, retune=retune).items():
        if name in coords and _inside(coords[name], dist):
            out[name] = (coords[name], dist)
    return out


def record(trial: Suggester, coords: dict[str, tuple[Any, BaseDistribution]]) -> None:
    """Ask ``trial`` for each coordinate of ``coords`` with its distribution: a sampler that
    presets the values (``samplers.PresetSampler``) then records exactly them."""
    for name, (_, dist) in coords.items():
        if isinstance(dist, CategoricalDistribution):
            trial.suggest_categorical(name, list(dist.choices))
        else:
            assert isinstance(dist, FloatDistribution)
            trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def _inside(value: Any, dist: BaseDistribution) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    assert isinstance(dist, FloatDistribution)
    return dist.low <= value <= dist.high
