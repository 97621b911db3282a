"""Adam's hyperparameters: their defaults, and how each one is searched.

Each parameter is searched through one or more *coordinates*, named Optuna parameters with a
distribution suited to Adam: lr and eps log-uniform; beta1 and beta2 as ``1 - beta`` on a log
scale (0.9, 0.99 and 0.999 are equally far apart, as they are in effective averaging horizon);
weight decay as "off, or log-uniform"; amsgrad and decoupled decay as choices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from adamtune.config import PARAMS, SpaceConfig


@dataclass(frozen=True)
class AdamParams:
    """One full set of ``torch.optim.Adam`` hyperparameters."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    decoupled_weight_decay: bool = False

    def torch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``torch.optim.Adam(model.parameters(), **kwargs)``."""
        return {
            "lr": self.lr,
            "betas": [self.beta1, self.beta2],
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
            "decoupled_weight_decay": self.decoupled_weight_decay,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AdamParams:
        return cls(**{k: values[k] for k in PARAMS if k in values})

    def with_values(self, values: dict[str, Any]) -> AdamParams:
        return replace(self, **values)


ADAM_DEFAULTS = AdamParams()


class Suggester(Protocol):
    """The part of ``optuna.Trial`` used to draw values."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def fixed_values(space: SpaceConfig) -> dict[str, Any]:
    """Parameters the user pinned in the space (``beta2: 0.999``, ``amsgrad: false``)."""
    out: dict[str, Any] = {}
    for name in PARAMS:
        value = getattr(space, name)
        if isinstance(value, list):
            if len(value) == 1:
                out[name] = value[0]
        elif value.is_fixed:
            out[name] = value.fixed if value.fixed is not None else value.low
    return out


def searched(space: SpaceConfig) -> list[str]:
    return [p for p in PARAMS if space.is_searched(p)]


def coordinates(
    param: str, space: SpaceConfig, *, with_zero: bool = False
) -> dict[str, BaseDistribution]:
    """The Optuna parameters through which ``param`` is searched.

    ``with_zero`` adds the on/off switch of weight decay; a staged search leaves it out because
    the incumbent entering the weight-decay stage already has decay off.
    """
    value = getattr(space, param)
    if isinstance(value, list):
        return {param: CategoricalDistribution(value)}
    if param in ("beta1", "beta2"):
        return {f"one_minus_{param}": FloatDistribution(1 - value.high, 1 - value.low, log=True)}
    dists: dict[str, BaseDistribution] = {}
    if param == "weight_decay" and with_zero and value.zero:
        dists["weight_decay_on"] = CategoricalDistribution([False, True])
    dists[param] = FloatDistribution(value.low, value.high, log=True)
    return dists


def suggest(
    trial: Suggester, params: list[str], space: SpaceConfig, *, with_zero: bool = False
) -> dict[str, Any]:
    """Draw values for ``params`` from ``trial``; returns Adam values keyed by parameter."""
    out: dict[str, Any] = {}
    for param in params:
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


def _inside(value: Any, dist: BaseDistribution) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    assert isinstance(dist, FloatDistribution)
    return dist.low <= value <= dist.high


def coordinate_params(coords: dict[str, Any]) -> list[str]:
    """The Adam parameters behind coordinate names (``one_minus_beta1`` -> ``beta1``)."""
    out: list[str] = []
    for name in coords:
        param = name.removeprefix("one_minus_").removesuffix("_on")
        if param not in out:
            out.append(param)
    return out
