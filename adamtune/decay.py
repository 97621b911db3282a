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

from adamtune.rows import TrialRow
from adamtune.schedules import Schedule
from adamtune.search.selection import Decision, Measured, Selection, beats, measured


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


def decay_answer(
    rows: list[TrialRow], selection: Selection, stage: str | None
) -> DecayAnswer | None:
    """The answer of the schedule stage named ``stage``; None without one (or before it ran).

    ``constant`` is always the best constant-rate parameter set (no decay; a warmup allowed)
    measured on the same seeds as the decay it is compared with: the incumbent, or a constant
    rate the stage re-tuned, so a gain from re-tuning lr is not credited to decay.
    """
    mine = [r for r in rows if r.stage == stage and r.params is not None]
    decision = next((d for d in selection.decisions if d.stage == stage), None)
    if stage is None or not mine or decision is None:
        return None
    incumbent = next((r for r in rows if r.number == decision.before.trial), None)
    per: dict[str, float | None] = {}
    for row in [*mine, *([incumbent] if incumbent else [])]:
        assert row.params is not None
        kind, value = row.params.schedule.kind, row.value
        known = per.get(kind)
        per[kind] = value if known is None else (known if value is None else min(known, value))
    best = decision.best
    if best.params.schedule.decays:  # judged beyond noise: the stage's own comparison
        constant = _best_constant(rows, mine, decision)
        # Adopted over the incumbent, and also beyond the best constant rate on the same seeds
        # (a warmup or a re-tuned lr alone may be what gained).
        helped = decision.adopted and beats(constant, best, decision.bar)
        schedule = best.params.schedule
        return DecayAnswer(helped, schedule, constant.mean, best.mean, len(best.values), per)
    # The stage's best was a constant rate: the best decaying candidate on the search's seed.
    decaying = [r for r in mine if r.value is not None and r.params and r.params.schedule.decays]
    top = min(decaying, key=lambda r: (r.value or 0.0, r.number), default=None)
    constant_value = per.get("none")
    if top is None or top.params is None:
        return DecayAnswer(False, None, constant_value, None, 1, per)
    return DecayAnswer(False, top.params.schedule, constant_value, top.value, 1, per)


def _best_constant(rows: list[TrialRow], mine: list[TrialRow], decision: Decision) -> Measured:
    """The lowest constant-rate mean on the seed slots the decision compared: the incumbent's,
    or a stage candidate's measured on those same slots."""
    # Decision values hold the re-run slots 1..n-1 when confirmed, else slot 0 alone.
    slots = len(decision.best.values) + 1 if decision.confirmed else 1
    rerun = {r.confirms for r in rows if r.confirms is not None}
    pool = [
        measured(rows, r)
        for r in mine
        if r.value is not None
        and r.params is not None
        and not r.params.schedule.decays
        and (slots == 1 or r.number in rerun)
    ]
    same = [m.on(slots) for m in pool if len(m.values) >= slots]
    return min([decision.before, *same], key=lambda m: (m.mean, m.trial))
