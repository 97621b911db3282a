"""One plain row per trial of a study, for every reader: search, selection, renderers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamtune.space import AdamParams
from adamtune.study import stage_of, status_of


@dataclass
class TrialRow:
    number: int
    stage: str
    state: str  # complete | pruned | diverged | failed | killed | interrupted | running
    params: AdamParams | None
    value: float | None
    epochs: int | None
    seconds: float | None = None
    error: str | None = None
    slot: int = 0  # seed slot: 0 for the search's own seeds (``Task.seeds_for``)
    confirms: int | None = None  # for noise and confirm runs: the trial they re-run

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
    adam = attrs.get("adam")
    return TrialRow(
        number=trial.number,
        stage=stage_of(trial),
        state=status_of(trial),
        params=AdamParams.from_dict(adam) if adam else None,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        epochs=attrs.get("epochs"),
        seconds=attrs.get("seconds"),
        error=attrs.get("error"),
        slot=int(attrs.get("slot", 0)),
        confirms=attrs.get("confirms"),
    )


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    return [row_of(t) for t in study.get_trials(deepcopy=False)]


def finite_or_none(v: float) -> float | None:
    """A value for JSON and user attributes, where NaN and infinity are not allowed."""
    return v if math.isfinite(v) else None
