"""Plain results read from a study: rows of trials and the winner, for any renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamtune.errors import NoCompletedTrialError
from adamtune.plan import BASELINE
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "stage": self.stage,
            "state": self.state,
            "params": self.params.torch_kwargs() if self.params else None,
            "value": self.value,
            "epochs": self.epochs,
            "seconds": self.seconds,
            "error": self.error,
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
    )


@dataclass
class StageSummary:
    name: str
    trials: int
    best_value: float | None
    best_trial: int | None
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # param: (before, after)


@dataclass
class BestResult:
    study: str
    value: float
    trial: int
    stage: str
    params: AdamParams
    default_value: float | None
    n_trials: int
    stages: list[StageSummary]
    storage: str = ""
    schedule: str | None = None

    @property
    def improvement(self) -> float | None:
        """Relative drop of validation loss from Adam's defaults (0.1 = 10% lower)."""
        if self.default_value is None or self.default_value == 0:
            return None
        return (self.default_value - self.value) / self.default_value

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "value": self.value,
            "trial": self.trial,
            "stage": self.stage,
            "params": self.params.torch_kwargs(),
            "schedule": self.schedule,
            "default_value": self.default_value,
            "improvement": self.improvement,
            "n_trials": self.n_trials,
            "storage": self.storage,
            "stages": [
                {
                    "name": s.name,
                    "trials": s.trials,
                    "best_value": s.best_value,
                    "best_trial": s.best_trial,
                    "changed": {k: list(v) for k, v in s.changed.items()},
                }
                for s in self.stages
            ],
        }


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    return [row_of(t) for t in study.get_trials(deepcopy=False)]


def stage_summaries(rows: list[TrialRow]) -> list[StageSummary]:
    """Per stage, in the order stages ran: its best value and what it changed in the winner."""
    order: list[str] = []
    for row in rows:
        if row.stage not in order:
            order.append(row.stage)
    out: list[StageSummary] = []
    incumbent: TrialRow | None = None
    for name in order:
        mine = [r for r in rows if r.stage == name]
        done = [r for r in mine if r.value is not None]
        best = min(done, key=lambda r: (r.value, r.number)) if done else None
        summary = StageSummary(
            name, len(mine), best.value if best else None, best.number if best else None
        )
        if best is not None and (incumbent is None or best.value < incumbent.value):  # type: ignore[operator]
            if incumbent is not None and incumbent.params and best.params:
                before, after = incumbent.params.as_dict(), best.params.as_dict()
                summary.changed = {k: (before[k], after[k]) for k in after if before[k] != after[k]}
            incumbent = best
        out.append(summary)
    return out


def best_result(study: optuna.Study, storage: str = "") -> BestResult:
    rows = trial_rows(study)
    done = [r for r in rows if r.value is not None and r.params is not None]
    if not done:
        raise NoCompletedTrialError(
            f"study {study.study_name!r} has no completed trial yet ({len(rows)} trials: "
            f"run adamtune search first, or see adamtune trials)"
        )
    best = min(done, key=lambda r: (r.value, r.number))
    baseline = [r for r in done if r.stage == BASELINE]
    assert best.value is not None and best.params is not None
    return BestResult(
        study=study.study_name,
        value=best.value,
        trial=best.number,
        stage=best.stage,
        params=best.params,
        default_value=baseline[0].value if baseline else None,
        n_trials=len(rows),
        stages=stage_summaries(rows),
        storage=storage,
    )
