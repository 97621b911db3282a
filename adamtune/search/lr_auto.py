"""``lr: auto``: the learning-rate range a study searches, read from the LR range test.

The rule: from ``valley / 10`` to ``largest_stable``, each the median over ``SEEDS`` runs of the
test (the search's seed and the fresh seeds of slots 1, 2). The valley is where the loss falls
steadily; a decade below leaves room for models that like a gentler rate. The largest stable
rate is where the loss climbs back to where it started: past it, training diverges. The range is
at least a decade wide (its low end moves down when the two readings are closer than that).

The test runs once per study, before the first trial; its range is stored in the study (user
attribute ``adamtune_lr_range``) and reused when the study is resumed, so every trial of a study
draws from the same range however many times it is resumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from adamtune.config.schema import Settings
from adamtune.config.space import AUTO_LADDER, LrRange
from adamtune.errors import SearchFailedError

if TYPE_CHECKING:  # the range test and the task import torch; ``best`` needs neither
    from adamtune.task.build import Task

ATTR = "adamtune_lr_range"
SEEDS = 3
RULE = "valley/10 .. largest_stable (medians over seeds)"
_MIN_WIDTH = 10.0  # high / low


@dataclass(frozen=True)
class AutoRange:
    """The range an ``lr: auto`` study searches, and the readings it came from."""

    low: float
    high: float
    seeds: int
    suggestions: dict[str, float | None] = field(default_factory=dict)  # medians
    spreads: dict[str, float | None] = field(default_factory=dict)  # max / min over seeds
    rule: str = RULE
    curves: list[dict[str, list[float]]] = field(default_factory=list)  # lrs, smoothed

    def as_dict(self, curves: bool = True) -> dict[str, Any]:
        """Everything (as stored in the study), or without the curves (for ``best``)."""
        data = asdict(self)
        if not curves:
            data.pop("curves")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoRange:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def range_from(
    suggestions: dict[str, float | None], last_lr: float | None
) -> tuple[float, float] | None:
    """(low, high) by the rule, from the suggestions' medians; ``last_lr`` (the highest rate the
    tests reached) stands in for a largest stable rate none of them found. None when the test
    found no valley to start from."""
    valley = suggestions.get("valley")
    if valley is None:
        return None
    high = suggestions.get("largest_stable") or last_lr or AUTO_LADDER[1]
    low = min(valley / 10, high / _MIN_WIDTH)
    return low, high


def stored_range(study: optuna.Study) -> AutoRange | None:
    data = study.user_attrs.get(ATTR)
    return AutoRange.from_dict(data) if isinstance(data, dict) else None


def measure_range(settings: Settings, task: Task) -> AutoRange:
    """Run the range test ``SEEDS`` times on ``task`` and apply the rule."""
    from adamtune.train.lr_find import run_range_test, summarise

    curves = run_range_test(task, SEEDS, *AUTO_LADDER)
    summary = summarise(curves)
    medians = {s.name: s.median for s in summary}
    reached = [c.lrs[-1] for c in curves if c.lrs]
    found = range_from(medians, sorted(reached)[len(reached) // 2] if reached else None)
    if found is None:
        raise SearchFailedError(
            f"{settings.path}: search.space.lr: 'auto' needs the LR range test to find a "
            f"falling loss, and it found none (see adamtune lr-find {settings.path}); give "
            f"lr a range {{low, high}} instead"
        )
    return AutoRange(
        low=found[0],
        high=found[1],
        seeds=SEEDS,
        suggestions=medians,
        spreads={s.name: s.spread for s in summary},
        curves=[
            {
                "lrs": [float(f"{v:.5g}") for v in c.lrs],
                "smoothed": [float(f"{v:.5g}") for v in c.smoothed],
            }
            for c in curves
        ],
    )


def with_lr_range(settings: Settings, low: float, high: float) -> Settings:
    """``settings`` whose space searches lr in [low, high]."""
    config = settings.config
    space = config.search.space.model_copy(update={"lr": LrRange(low=low, high=high)})
    search = config.search.model_copy(update={"space": space})
    return settings.model_copy(update={"config": config.model_copy(update={"search": search})})


def resolve_lr(
    settings: Settings, study: optuna.Study, task: Task
) -> tuple[Settings, AutoRange | None]:
    """For ``lr: auto``: the study's stored range, or a fresh range test's (then stored), and
    settings that search it. Other configs come back unchanged, with None."""
    if not settings.config.search.space.lr.auto:
        return settings, None
    found = stored_range(study)
    if found is None:
        found = measure_range(settings, task)
        study.set_user_attr(ATTR, found.as_dict())
    return with_lr_range(settings, found.low, found.high), found
