"""One full set of Adam's hyperparameters (and the lr schedule beside them), Adam's defaults,
and the values a user pinned in the search space: what training needs to know of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from adamtune.config.space import PARAMS, SpaceConfig
from adamtune.train.schedules import DECAYING, NO_SCHEDULE, TYPICAL_END, Schedule


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
    schedule: Schedule = NO_SCHEDULE  # not an Adam argument: the scheduler beside it

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
        schedule = Schedule.from_dict(values.get("schedule"))
        return cls(**{k: values[k] for k in PARAMS if k in values}, schedule=schedule)

    def with_values(self, values: dict[str, Any]) -> AdamParams:
        return replace(self, **values)


ADAM_DEFAULTS = AdamParams()


def fixed_values(space: SpaceConfig) -> dict[str, Any]:
    """Parameters the user pinned in the space (``beta2: 0.999``, ``amsgrad: false``,
    ``schedule: [cosine]``: every trial then trains with that decay, to a typical end)."""
    out: dict[str, Any] = {}
    if len(space.schedule) == 1 and space.schedule[0] in DECAYING:
        out["schedule"] = Schedule(space.schedule[0], TYPICAL_END)
    for name in PARAMS:
        value = getattr(space, name)
        if isinstance(value, list):
            if len(value) == 1:
                out[name] = value[0]
        elif value.is_fixed:
            out[name] = value.fixed if value.fixed is not None else value.low
    return out
