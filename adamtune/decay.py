"""The answer to "should I still decay the learning rate with Adam?", read from the schedule stage.

The stage tries each candidate schedule (``schedules``) with lr re-tuned within 3x, against the
incumbent's constant rate. The answer is the stage's decision (``noise.select``): decay helped
only if the stage adopted a decaying schedule, i.e. it beat the constant rate beyond the noise
of the comparison, on the seeds that confirmed it when the study confirms. Beside it, each
candidate kind's best value on the search's own seed, so the user sees how close they came.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adamtune.noise import Selection
from adamtune.rows import TrialRow
from adamtune.schedules import Schedule

STAGE = "schedule"


@dataclass
class DecayAnswer:
    helped: bool
    schedule: Schedule | None  # the adopted decay (helped), else the best decaying candidate
    constant: float | None  # val loss at a constant rate (the incumbent)
    decayed: float | None  # val loss with ``schedule``
    seeds: int = 1  # seed slots behind the two values
    per_schedule: dict[str, float | None] = field(default_factory=dict)  # best, search's seed

    @property
    def change(self) -> float | None:
        if self.constant is None or self.decayed is None or self.constant == 0:
            return None
        return (self.decayed - self.constant) / self.constant

    def sentence(self) -> str:
        over = f" over {self.seeds} seeds" if self.seeds > 1 else ""
        if self.helped and self.schedule is not None:
            change = f" ({self.change:+.1%})" if self.change is not None else ""
            return (
                f"LR decay: {self.schedule.kind} lowered val loss {self.constant:.4g} -> "
                f"{self.decayed:.4g}{change}{over} vs constant LR ({self.schedule.describe()})"
            )
        text = "LR decay: no decay schedule beat a constant LR"
        if self.schedule is not None and self.decayed is not None and self.constant is not None:
            if self.decayed < self.constant:
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


def decay_answer(rows: list[TrialRow], selection: Selection) -> DecayAnswer | None:
    """The schedule stage's answer; None when the study has no schedule stage (yet)."""
    mine = [r for r in rows if r.stage == STAGE and r.params is not None]
    decision = next((d for d in selection.decisions if d.stage == STAGE), None)
    if not mine or decision is None:
        return None
    incumbent = next((r for r in rows if r.number == decision.before.trial), None)
    per: dict[str, float | None] = {}
    for row in [*mine, *([incumbent] if incumbent else [])]:
        assert row.params is not None
        kind = row.params.schedule.kind
        if row.value is not None:
            per[kind] = min(per.get(kind) or row.value, row.value)
        else:
            per.setdefault(kind, None)
    best = decision.best
    if best.params.schedule.decays:  # judged beyond noise: the stage's own comparison
        schedule = best.params.schedule
        helped = decision.adopted
        return DecayAnswer(helped, schedule, decision.before.mean, best.mean, len(best.values), per)
    # The stage's best was a constant rate: the best decaying candidate on the search's seed.
    decaying = [r for r in mine if r.value is not None and r.params and r.params.schedule.decays]
    top = min(decaying, key=lambda r: (r.value or 0.0, r.number), default=None)
    constant = per.get("none")
    if top is None or top.params is None:
        return DecayAnswer(False, None, constant, None, 1, per)
    return DecayAnswer(False, top.params.schedule, constant, top.value, 1, per)
