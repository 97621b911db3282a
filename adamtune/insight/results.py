"""Plain results read from a study: rows of trials and the winner, for any renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from pydantic import ValidationError

from adamtune.config.schema import SearchConfig, sign_of_direction
from adamtune.errors import NoCompletedTrialError
from adamtune.insight.decay import DecayAnswer, decay_answer
from adamtune.search.lr_auto import AutoRange, stored_range
from adamtune.search.plan import schedule_stage
from adamtune.search.rows import TrialRow, finite_or_none, maximized
from adamtune.search.selection import CONFIRM, Measured, Selection, verdict
from adamtune.search.study import CONFIG_ATTR, metric_of
from adamtune.search.winner import confirmed, stage_order, study_selection
from adamtune.train.params import AdamParams
from adamtune.train.schedules import spec


@dataclass(frozen=True)
class Spread:
    """A value measured over ``seeds`` seed slots: their mean and standard deviation."""

    mean: float
    std: float
    seeds: int

    @classmethod
    def of(cls, m: Measured, sign: float = 1.0) -> Spread:
        """``m`` as the study states it (``sign`` -1: a maximised metric, which adamtune
        measures negated)."""
        return cls(sign * m.mean, m.std, len(m.values))

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": finite_or_none(self.mean),
            "std": finite_or_none(self.std),
            "seeds": self.seeds,
        }


@dataclass
class StageSummary:
    name: str
    trials: int
    best_value: float | None
    best_trial: int | None
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # param: (before, after)
    # How the stage was judged (noise.Decision): its best candidate against the incumbent, on
    # the same seed slots, and the gain it needed.
    candidate: Spread | None = None
    incumbent: Spread | None = None
    bar: float | None = None
    adopted: bool = False
    confirmed: bool = False
    won: bool = False  # one of its trials won the final confirmation: the study's winner
    confirm_runs: int = 0  # re-runs of its candidates on extra seeds (stage ``confirm``)

    @property
    def confirmation_note(self) -> str:
        """What the final confirmation made of the stage's points, after its verdict: its pick
        re-run (``confirmed``), or one of them the study's winner (``won``)."""
        return ", won" if self.won else ", confirmed" if self.confirmed else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trials": self.trials,
            "confirm_runs": self.confirm_runs,
            "best_value": self.best_value,
            "best_trial": self.best_trial,
            "changed": {k: list(v) for k, v in self.changed.items()},
            "candidate": self.candidate.as_dict() if self.candidate else None,
            "incumbent": self.incumbent.as_dict() if self.incumbent else None,
            "needed_gain": self.bar,
            "adopted": self.adopted,
            "confirmed": self.confirmed,
            "won": self.won,
        }


@dataclass
class BestResult:
    """The winner: the last parameter set a stage adopted beyond noise (``noise.select``),
    with its value as the mean over the seed slots it was measured on."""

    study: str
    value: float
    trial: int
    stage: str
    params: AdamParams
    default_value: float | None
    n_trials: int
    stages: list[StageSummary]
    storage: str = ""
    epochs: int = 0  # train.epochs: what the schedule's scheduler is built for
    decay: DecayAnswer | None = None  # the schedule stage's answer
    value_std: float = 0.0
    seeds: int = 1  # seed slots behind ``value``
    default_std: float = 0.0
    default_seeds: int = 1
    noise: float | None = None  # the defaults' spread over seeds; None when not measured
    noise_seeds: int = 1  # the seed slots the noise was measured on

    @property
    def improvement(self) -> float | None:
        """Relative gain over Adam's defaults in the metric's direction (0.1: a loss 10%
        lower, or an accuracy 10% higher)."""
        if self.default_value is None or self.default_value == 0:
            return None
        gain = self.value - self.default_value if self.maximize else self.default_value - self.value
        return gain / abs(self.default_value)

    @property
    def direction(self) -> str:
        """The study's direction, as Optuna names it: minimize or maximize."""
        return "maximize" if self.maximize else "minimize"

    @property
    def change(self) -> float | None:
        """The value's relative change from Adam's defaults' (-0.1: 10% lower)."""
        if self.improvement is None:
            return None
        return self.improvement if self.maximize else -self.improvement

    verdict: str = "improved"  # improved | within_noise | kept_defaults (noise.verdict)
    overall_bar: float | None = None  # the gain over the defaults an established one needs
    lr_range: AutoRange | None = None  # the range an ``lr: auto`` study searched
    metric: str = "val loss"  # what ``value`` measures (``TrainConfig.metric_label``)
    maximize: bool = False  # a higher value is better

    @property
    def kept_defaults(self) -> bool:
        return self.verdict == "kept_defaults"

    def _schedule(self) -> dict[str, Any] | None:
        """The winner's schedule and its torch scheduler; None for a constant rate."""
        schedule = self.params.schedule
        if not schedule.decays and not schedule.warmup:
            return None
        parts, milestones = spec(schedule, self.params.lr, self.epochs)
        return {
            **schedule.as_dict(),
            "epochs": self.epochs,
            "schedulers": [{"name": name, "kwargs": kwargs} for name, kwargs in parts],
            "milestones": milestones,
            "step": "epoch",
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "metric": self.metric,
            "direction": self.direction,
            "value": self.value,
            "value_std": finite_or_none(self.value_std),
            "seeds": self.seeds,
            "trial": self.trial,
            "stage": self.stage,
            "params": self.params.torch_kwargs(),
            "schedule": self._schedule(),
            "decay": self.decay.as_dict() if self.decay else None,
            "default_value": self.default_value,
            "default_std": finite_or_none(self.default_std),
            "default_seeds": self.default_seeds,
            "noise": None if self.noise is None else {"std": self.noise, "seeds": self.noise_seeds},
            "improvement": self.improvement,
            "verdict": self.verdict,
            "needed_gain": self.overall_bar,
            "n_trials": self.n_trials,
            "lr_range": self.lr_range.as_dict(curves=False) if self.lr_range else None,
            "storage": self.storage,
            "stages": [s.as_dict() for s in self.stages],
        }


def stage_summaries(
    rows: list[TrialRow], selection: Selection, sign: float = 1.0
) -> list[StageSummary]:
    """Per stage, in the order stages ran: its best trial, how it was judged and what it
    changed in the winner (values as the study states them: ``Spread.of``)."""
    decisions = {d.stage: d for d in selection.decisions}
    winner = selection.winner
    out: list[StageSummary] = []
    for name in stage_order(rows):
        mine = [r for r in rows if r.stage == name]
        done = [r for r in mine if r.loss is not None]
        best = min(done, key=lambda r: (r.loss or 0.0, r.number)) if done else None
        summary = StageSummary(
            name, len(mine), best.value if best else None, best.number if best else None
        )
        numbers = {r.number for r in mine}
        summary.confirm_runs = sum(1 for r in rows if r.stage == CONFIRM and r.confirms in numbers)
        summary.won = winner is not None and winner.trial in numbers
        d = decisions.get(name)
        if d is not None:
            summary.candidate = Spread.of(d.best, sign)
            summary.incumbent = Spread.of(d.before, sign)
            summary.bar, summary.adopted, summary.confirmed = d.bar, d.adopted, d.confirmed
            if d.adopted:
                before, after = d.before.params.as_dict(), d.best.params.as_dict()
                summary.changed = {k: (before[k], after[k]) for k in after if before[k] != after[k]}
        out.append(summary)
    return out


def _schedule_stage(stored: dict[str, Any]) -> str | None:
    """The name of the stage that searched the lr schedule, from the study's stored config."""
    try:
        return schedule_stage(SearchConfig.model_validate(stored.get("search", {})))
    except ValidationError:  # a config from a version that no longer validates: no answer
        return None


def best_result(study: optuna.Study, storage: str = "") -> BestResult:
    stored = study.user_attrs.get(CONFIG_ATTR, {})
    rows, selection = study_selection(study)
    found = confirmed(rows, selection)
    if found is None or selection.defaults is None:
        raise NoCompletedTrialError(
            f"study {study.study_name!r} has no completed trial yet ({len(rows)} trials: run "
            f"adamtune search first, or see adamtune trials)"
        )
    noise_seeds = len(selection.defaults.values)
    stage, winner, defaults = found
    maximize = maximized(study)
    sign = sign_of_direction(maximize)
    metric = metric_of(study)
    return BestResult(
        study=study.study_name,
        value=sign * winner.mean,
        trial=winner.trial,
        stage=stage,
        params=winner.params,
        default_value=finite_or_none(sign * defaults.mean),
        n_trials=len(rows),
        stages=stage_summaries(rows, selection, sign),
        storage=storage,
        value_std=winner.std,
        seeds=len(winner.values),
        default_std=defaults.std,
        default_seeds=len(defaults.values),
        noise=selection.noise,
        noise_seeds=noise_seeds,
        verdict=verdict(selection),
        overall_bar=selection.overall.bar if selection.overall else None,
        lr_range=stored_range(study),
        epochs=int(stored.get("train", {}).get("epochs", 0)),
        decay=decay_answer(rows, selection, _schedule_stage(stored), metric, maximize),
        metric=metric,
        maximize=maximize,
    )
