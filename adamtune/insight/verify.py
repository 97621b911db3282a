"""``adamtune verify``: retrain the winner, the runner-up and Adam's defaults on fresh seeds.

A study's own numbers come from the seeds and splits it searched and confirmed on. Verification
trains the three parameter sets again on ``seeds`` seed slots no study trial used (slots 100,
101, ...: fresh initial weights, batch orders and train/val splits) and compares the winner
with the defaults slot by slot: the paired differences cancel what a slot does to every
parameter set alike. The gain *holds* when a one-sided paired t-test puts it above zero at
95% and it is not negligible (over a tenth of the defaults' spread and 0.1% of their loss); it
is *worse* when the same holds the other way; otherwise it is *not established*.

The result is stored in the study (user attribute ``adamtune_verify``), for ``report``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adamtune.config.schema import sign_of_direction
from adamtune.search import stats
from adamtune.search.plan import BASELINE
from adamtune.search.rows import TrialRow, finite_or_none
from adamtune.search.selection import CONFIRM, NOISE, Selection, measured
from adamtune.train.params import AdamParams

if TYPE_CHECKING:
    import optuna

    from adamtune.task.build import Task

ATTR = "adamtune_verify"
_CHOICES = ("amsgrad", "decoupled_weight_decay")
_MIN_RELATIVE = 0.001  # and never under 0.1% of their loss: no claim for a negligible gain
FIRST_SLOT = 100  # far above any confirmation slot a study uses
CONFIDENCE = 0.95


@dataclass
class Verified:
    """One parameter set's values on the verification slots (None: diverged or pruned)."""

    label: str  # best | runner_up | defaults
    trial: int
    params: AdamParams
    values: list[float | None]  # as the study states them (a maximised metric as itself)
    maximize: bool = False

    @property
    def finite(self) -> list[float]:
        return [v for v in self.values if v is not None and math.isfinite(v)]

    @property
    def mean(self) -> float:
        worst = -math.inf if self.maximize else math.inf
        return stats.mean([worst if v is None else v for v in self.values])

    @property
    def std(self) -> float:
        return statistics.stdev(self.finite) if len(self.finite) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "trial": self.trial,
            "params": self.params.torch_kwargs(),
            "schedule": self.params.schedule.as_dict(),
            "values": self.values,
            "mean": finite_or_none(self.mean),
            "std": self.std,
            "maximize": self.maximize,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verified:
        params = dict(data["params"])
        beta1, beta2 = params.pop("betas")
        params.update(beta1=beta1, beta2=beta2, schedule=data.get("schedule"))
        return cls(
            data["label"],
            data["trial"],
            AdamParams.from_dict(params),
            data["values"],
            bool(data.get("maximize", False)),
        )


def retrained_on(fresh_splits: bool) -> str:
    """What verify's slots vary: seeds and splits, or, with the user's data function (which
    returns its one split), the seeds only."""
    if fresh_splits:
        return "fresh seeds and splits"
    return "fresh seeds (on the data function's own split)"


@dataclass
class Verification:
    study: str
    slots: list[int]
    runs: list[Verified] = field(default_factory=list)
    p_value: float | None = None  # one-sided paired t-test, best better than the defaults
    wins: int = 0  # slots where the winner scored better than the defaults
    verdict: str = "not_established"  # holds | not_established | worse | same_params
    fresh_splits: bool = True  # False: the user's data function kept its one split

    @property
    def retrained_on(self) -> str:
        return retrained_on(self.fresh_splits)

    def run(self, label: str) -> Verified | None:
        return next((r for r in self.runs if r.label == label), None)

    @property
    def maximize(self) -> bool:
        """Whether the study maximises its metric (a higher value is better)."""
        return any(r.maximize for r in self.runs)

    @property
    def improvement(self) -> float | None:
        best, defaults = self.run("best"), self.run("defaults")
        if best is None or defaults is None or not math.isfinite(defaults.mean):
            return None
        if not defaults.mean:
            return None
        gain = best.mean - defaults.mean if best.maximize else defaults.mean - best.mean
        return gain / abs(defaults.mean)

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "direction": "maximize" if self.maximize else "minimize",
            "seeds": len(self.slots),
            "slots": self.slots,
            "runs": [r.as_dict() for r in self.runs],
            "improvement": None if self.improvement is None else finite_or_none(self.improvement),
            "wins": self.wins,
            "p_value": self.p_value,
            "verdict": self.verdict,
            "fresh_splits": self.fresh_splits,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verification:
        runs = [Verified.from_dict(r) for r in data.get("runs", [])]
        return cls(
            data["study"],
            data["slots"],
            runs,
            data.get("p_value"),
            data.get("wins", 0),
            data.get("verdict", "not_established"),
            data.get("fresh_splits", True),
        )


def _same_but_choices(a: AdamParams, b: AdamParams | None) -> bool:
    """Whether ``a`` and ``b`` differ at most in amsgrad or decoupled decay: the winner with
    amsgrad flipped (the amsgrad stage's trial) is not a second opinion worth training."""
    if b is None:
        return False
    return a.with_values({k: getattr(b, k) for k in _CHOICES}) == b


def runner_up(rows: list[TrialRow], selection: Selection) -> TrialRow | None:
    """The best searched parameter set that differs from both the winner and the defaults in
    more than a choice: by its mean over the seed slots it was re-run on when it was
    confirmed, else by its own value."""
    winner = selection.winner.params if selection.winner else None
    defaults = selection.defaults.params if selection.defaults else None
    searched = [
        r
        for r in rows
        if r.stage not in (BASELINE, NOISE, CONFIRM)
        and r.value is not None
        and r.params is not None
        and not _same_but_choices(r.params, winner)
        and not _same_but_choices(r.params, defaults)
    ]
    if not searched:
        return None
    rerun = {r.confirms for r in rows if r.confirms is not None}

    def score(row: TrialRow) -> tuple[int, float, int]:
        m = measured(rows, row)
        confirmed = row.number in rerun and len(m.values) > 1
        return (0 if confirmed else 1, m.on(len(m.values)).mean, row.number)

    return min(searched, key=score)


def verify(
    study: optuna.Study, task: Task, seeds: int, selection: Selection, rows: list[TrialRow]
) -> Verification:
    """Train the winner, the runner-up and the defaults on ``seeds`` fresh slots; compare."""
    from adamtune.train.batched import train_batch
    from adamtune.train.engine import train_trial
    from adamtune.train.sizing import batch_size

    assert selection.winner is not None and selection.defaults is not None
    entries = [("best", selection.winner.trial, selection.winner.params)]
    second = runner_up(rows, selection)
    if second is not None and second.params is not None:
        entries.append(("runner_up", second.number, second.params))
    entries.append(("defaults", selection.defaults.trial, selection.defaults.params))
    slots = list(range(FIRST_SLOT, FIRST_SLOT + seeds))
    params = [p for _, _, p in entries]
    runs = [(slot, p) for slot in slots for p in params]  # slot by slot
    k = batch_size(task, "auto")[0]
    if k > 1:  # as many whole slots per batch as it holds: usually all of them, one round
        per = max(1, k // len(params)) * len(params)
        outcomes = []
        for start in range(0, len(runs), per):
            chunk = runs[start : start + per]
            outcomes += train_batch(task, [p for _, p in chunk], slot=[s for s, _ in chunk])
    else:
        outcomes = [train_trial(task, p, slot=s) for s, p in runs]
    values: list[list[float | None]] = [[] for _ in entries]
    for i, outcome in enumerate(outcomes):
        done = outcome.status == "complete" and outcome.value is not None
        values[i % len(params)].append(task.sign * outcome.value if done else None)  # type: ignore[operator]
    result = Verification(
        study.study_name,
        slots,
        [
            Verified(label, n, p, v, task.sign < 0)
            for (label, n, p), v in zip(entries, values, strict=True)
        ],
        fresh_splits=task.fresh_splits,
    )
    _judge(result)
    study.set_user_attr(ATTR, result.as_dict())
    return result


def _judge(result: Verification) -> None:
    best, defaults = result.run("best"), result.run("defaults")
    assert best is not None and defaults is not None
    if best.params == defaults.params:
        result.verdict = "same_params"
        return

    sign = sign_of_direction(best.maximize)

    def score(v: float | None) -> float:  # lower is better
        return sign * v if v is not None else math.inf

    slots = [(score(d), score(b)) for d, b in zip(defaults.values, best.values, strict=True)]
    ok = math.isfinite
    # A slot where only the defaults diverged is a win; only the winner, a loss that settles
    # it (a winner that diverges on a fresh seed does not hold); both, no evidence.
    result.wins = sum(1 for d, b in slots if ok(b) and b < d)
    if any(ok(d) and not ok(b) for d, b in slots):
        result.verdict = "worse"
        return
    pairs = [(d, b) for d, b in slots if ok(d) and ok(b)]
    if len(pairs) < 2:
        return
    diffs = [d - b for d, b in pairs]
    result.p_value = stats.paired_p(diffs, "greater")
    worse = stats.paired_p(diffs, "less")
    # As in a study's stages, a gain under a tenth of the seeds' spread (or under 0.1% of the
    # loss) is not worth a claim, however consistent.
    floor = max(
        stats.MIN_GAIN * defaults.std, _MIN_RELATIVE * abs(statistics.fmean(d for d, _ in pairs))
    )
    if result.p_value < 1 - CONFIDENCE and statistics.fmean(diffs) > floor:
        result.verdict = "holds"
    elif worse < 1 - CONFIDENCE and -statistics.fmean(diffs) > floor:
        result.verdict = "worse"
    else:
        result.verdict = "not_established"


def stored_verification(study: optuna.Study) -> Verification | None:
    data = study.user_attrs.get(ATTR)
    return Verification.from_dict(data) if isinstance(data, dict) else None
