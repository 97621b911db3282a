"""One plain row per trial of a study, for every reader: search, selection, renderers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamtune.config.schema import sign_of_direction
from adamtune.errors import OptionError
from adamtune.search import trial_attrs
from adamtune.search.study import stage_of, status_of
from adamtune.train.params import AdamParams


@dataclass
class TrialRow:
    number: int
    stage: str
    state: str  # complete | pruned | diverged | failed | oom | killed | interrupted | running
    params: AdamParams | None
    value: float | None
    epochs: int | None
    seconds: float | None = None
    error: str | None = None
    slot: int = 0  # seed slot: 0 for the search's own seeds (``Task.seeds_for``)
    confirms: int | None = None  # for noise and confirm runs: the trial they re-run
    maximized: bool = False  # the study maximises its metric: a higher value is better

    @property
    def loss(self) -> float | None:
        """The value as adamtune compares values: lower is better."""
        return None if self.value is None else sign_of_direction(self.maximized) * self.value

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "stage": self.stage,
            "state": self.state,
            "params": self.params.torch_kwargs() if self.params else None,
            "schedule": self.params.schedule.as_dict() if self.params else None,
            "value": self.value,
            "epochs": self.epochs,
            "seconds": self.seconds,
            "error": self.error,
            "slot": self.slot,
            "confirms": self.confirms,
        }


def row_of(trial: FrozenTrial) -> TrialRow:
    attrs = trial.user_attrs
    adam = attrs.get(trial_attrs.ADAM)
    return TrialRow(
        number=trial.number,
        stage=stage_of(trial),
        state=status_of(trial),
        params=AdamParams.from_dict(adam) if adam else None,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        epochs=attrs.get(trial_attrs.EPOCHS),
        seconds=attrs.get(trial_attrs.SECONDS),
        error=attrs.get(trial_attrs.ERROR),
        slot=int(attrs.get(trial_attrs.SLOT, 0)),
        confirms=attrs.get(trial_attrs.CONFIRMS),
        maximized=bool(attrs.get(trial_attrs.MAXIMIZED)),
    )


def loss_of(trial: FrozenTrial) -> float | None:
    """A finished trial's value, lower is better (None unless it completed)."""
    if trial.state != TrialState.COMPLETE or trial.value is None:
        return None
    return trial_attrs.sign_of(trial.user_attrs) * trial.value


def losses_of(trial: FrozenTrial) -> dict[int, float]:
    """A trial's values per epoch, lower is better."""
    sign = trial_attrs.sign_of(trial.user_attrs)
    return {step: sign * v for step, v in trial.intermediate_values.items()}


def maximized(study: optuna.Study) -> bool:
    """Whether ``study`` maximises its metric (``train.metric: accuracy``, say)."""
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    return [row_of(t) for t in study.get_trials(deepcopy=False)]


STATES = (
    "complete",
    "pruned",
    "diverged",
    "failed",
    "oom",
    "killed",
    "interrupted",
    "running",
    "waiting",
)
SORTS = ("number", "value", "stage")


def filter_rows(
    rows: list[TrialRow],
    stages: list[str] | None = None,
    states: list[str] | None = None,
    sort: str = "number",
) -> list[TrialRow]:
    """``rows`` of the given stages and states (all when None), sorted by trial number, by
    value (best first; trials without one last) or by stage (in the order stages ran)."""
    for state in states or []:
        if state not in STATES:
            raise OptionError("state", f"expected one of {', '.join(STATES)} (got {state!r})")
    known = list(dict.fromkeys(r.stage for r in rows))
    for stage in stages or []:
        if stage not in known:
            raise OptionError("stage", f"no trial of stage {stage!r} (stages: {', '.join(known)})")
    if sort not in SORTS:
        raise OptionError("sort", f"expected one of {', '.join(SORTS)} (got {sort!r})")
    kept = [
        r for r in rows if (not stages or r.stage in stages) and (not states or r.state in states)
    ]
    if sort == "value":
        return sorted(kept, key=lambda r: (r.loss is None, r.loss or 0.0, r.number))
    if sort == "stage":
        return sorted(kept, key=lambda r: (known.index(r.stage), r.number))
    return kept


def finite_or_none(v: float) -> float | None:
    """A value for JSON and user attributes, where NaN and infinity are not allowed."""
    return v if math.isfinite(v) else None
