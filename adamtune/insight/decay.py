"""The answer to "should I still decay the learning rate with Adam?", read from the schedule stage.

The stage tries each candidate schedule (``schedules``) with lr re-tuned within 3x, against the
incumbent's constant rate. The answer is the stage's decision, made by its model of the values
(``search.selection.stage_pick``): decay helped only if the stage moved to a decaying schedule
that the model also puts below every constant rate it measured. Beside it, each candidate
kind's best value on the search's own seed, so the user sees how close they came.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adamtune.config.schema import sign_of_direction
from adamtune.search.rows import TrialRow
from adamtune.search.selection import Selection, stage_pick
from adamtune.train.schedules import Schedule


@dataclass
class DecayAnswer:
    helped: bool
    schedule: Schedule | None  # the adopted decay (helped), else the best decaying candidate
    constant: float | None  # the value at a constant rate (the incumbent)
    decayed: float | None  # the value with ``schedule``
    seeds: int = 1  # seed slots behind the two values
    per_schedule: dict[str, float | None] = field(default_factory=dict)  # best, search's seed
    metric: str = "val loss"
    maximize: bool = False  # a higher value is better (``train.metric: accuracy``)

    @property
    def change(self) -> float | None:
        if self.constant is None or self.decayed is None or self.constant == 0:
            return None
        return (self.decayed - self.constant) / abs(self.constant)

    def sentence(self) -> str:
        over = f" over {self.seeds} seeds" if self.seeds > 1 else ""
        if self.helped and self.schedule is not None:
            change = f" ({self.change:+.1%})" if self.change is not None else ""
            return (
                f"LR decay: {self.schedule.kind} "
                f"{'raised' if self.maximize else 'lowered'} {self.metric} {self.constant:.4g} -> "
                f"{self.decayed:.4g}{change}{over} vs constant LR ({self.schedule.describe()})"
            )
        text = "LR decay: no decay schedule beat a constant LR"
        if self.schedule is not None and self.decayed is not None and self.constant is not None:
            if (self.decayed > self.constant) if self.maximize else self.decayed < self.constant:
                text += " beyond noise"
            text += (
                f" (best decay: {self.schedule.kind} {self.decayed:.4g} vs constant "
                f"{self.constant:.4g}{over})"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "helped": self.helped,
            "schedule": self.schedule.as_dict() if self.schedule else None,
            "constant": self.constant,
            "decayed": self.decayed,
            "change": self.change,
            "seeds": self.seeds,
            "per_schedule": self.per_schedule,
            "sentence": self.sentence(),
        }


def decay_answer(
    rows: list[TrialRow],
    selection: Selection,
    stage: str | None,
    metric: str = "val loss",
    maximize: bool = False,
) -> DecayAnswer | None:
    """The answer of the schedule stage named ``stage``; None without one (or before it ran).

    Judged by the stage's model (``selection.stage_pick``), on the search's seed and split:
    decay helped when the stage moved to a decaying schedule that the model also puts below
    the best constant-rate point (the incumbent, or a constant rate the stage re-tuned, so a
    gain from re-tuning lr or a warmup is not credited to decay).
    """
    mine = [r for r in rows if r.stage == stage and r.params is not None]
    decision = next((d for d in selection.decisions if d.stage == stage), None)
    if stage is None or not mine or decision is None:
        return None
    incumbent = next((r for r in rows if r.number == decision.before.trial), None)
    pick = stage_pick(rows, stage, incumbent) if incumbent is not None else None
    if incumbent is None or pick is None:
        return None
    per: dict[str, float | None] = {}
    for row in [*mine, incumbent]:
        assert row.params is not None
        kind, value = row.params.schedule.kind, row.loss
        known = per.get(kind)
        per[kind] = value if known is None else (known if value is None else min(known, value))
    sign = sign_of_direction(maximize)
    shown = {k: None if v is None else sign * v for k, v in per.items()}
    points = [(pick.incumbent_fit, incumbent), *pick.ranked]
    constant = min(f for f, r in points if r.params and not r.params.schedule.decays)
    decaying = [(f, r) for f, r in pick.ranked if r.params and r.params.schedule.decays]
    if not decaying:
        return DecayAnswer(False, None, sign * constant, None, 1, shown, metric, maximize)
    fit, top = min(decaying, key=lambda p: (p[0], p[1].number))
    assert top.params is not None
    helped = pick.moves and top is pick.best and fit < constant
    return DecayAnswer(
        helped, top.params.schedule, sign * constant, sign * fit, 1, shown, metric, maximize
    )
