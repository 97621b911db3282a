"""The stage plan: which parameters each stage searches, and how many trials it gets.

Default order (staged): lr -> betas (beta1 + beta2) -> eps -> weight_decay (with decoupled
decay) -> amsgrad. A stage whose parameters are all fixed in the space is left out.

Budget rule. The study's ``trials`` include the baseline (trial 0, Adam's defaults); the other
R = trials - 1 are split as follows:
- with fewer than 10 trials in all, only the first stage (normally lr) is tuned;
- amsgrad gets one trial per choice the incumbent does not already use (normally 1);
- the rest is shared by weight: lr 4, betas 3, weight_decay 2, eps 1, rounded by largest
  remainder, ties to the earlier stage.
Explicit ``search.stages`` take their ``trials`` in order (cut off where the budget ends); stages
without ``trials`` share what is left equally; leftover budget goes to the last stage.
When a study is resumed with a different total, stages already left behind keep the trials they
had and the stages still to come share the new remainder in the same proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

from adamtune.config import SearchConfig
from adamtune.space import searched

BASELINE = "defaults"
SMALL_STUDY = 10
_DEFAULT_STAGES: list[tuple[str, list[str], int]] = [
    ("lr", ["lr"], 4),
    ("betas", ["beta1", "beta2"], 3),
    ("eps", ["eps"], 1),
    ("weight_decay", ["weight_decay", "decoupled_weight_decay"], 2),
    ("amsgrad", ["amsgrad"], 0),  # 0: budgeted by its number of choices instead
]


@dataclass(frozen=True)
class Stage:
    name: str
    params: tuple[str, ...]
    trials: int


def _split(total: int, weights: list[float]) -> list[int]:
    """Largest-remainder split of ``total`` by ``weights``; ties go to the earlier share."""
    if total <= 0 or not weights or sum(weights) <= 0:
        return [0] * len(weights)
    exact = [total * w / sum(weights) for w in weights]
    shares = [int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _default_stages(search: SearchConfig, rest: int) -> list[Stage]:
    live = searched(search.space)
    stages = [(n, [p for p in ps if p in live], w) for n, ps, w in _DEFAULT_STAGES]
    stages = [(n, ps, w) for n, ps, w in stages if ps]
    if rest + 1 < SMALL_STUDY:
        name, params, _ = stages[0]
        return [Stage(name, tuple(params), rest)]
    fixed_share = {n: len(search.space.amsgrad) - 1 for n, _, w in stages if w == 0}
    fixed_total = min(sum(fixed_share.values()), rest)
    weighted = [(n, ps, w) for n, ps, w in stages if w > 0]
    shares = dict(
        zip(
            [n for n, _, _ in weighted],
            _split(rest - fixed_total, [w for _, _, w in weighted]),
            strict=True,
        )
    )
    shares.update(fixed_share)
    return [Stage(n, tuple(ps), shares[n]) for n, ps, _ in stages if shares[n] > 0]


def _explicit_stages(search: SearchConfig, rest: int) -> list[Stage]:
    assert search.stages is not None
    budgets: list[int | None] = []
    left = rest
    for stage in search.stages:
        take = min(stage.trials, left) if stage.trials is not None else None
        budgets.append(take)
        left -= take or 0
    open_ = [i for i, b in enumerate(budgets) if b is None]
    for i, share in zip(open_, _split(left, [1.0] * len(open_)), strict=True):
        budgets[i] = share
    if not open_ and left > 0:
        budgets[-1] = (budgets[-1] or 0) + left
    return [
        Stage(s.name or "+".join(s.params), tuple(s.params), b or 0)
        for s, b in zip(search.stages, budgets, strict=True)
        if b
    ]


def make_plan(search: SearchConfig, total: int) -> list[Stage]:
    """The stages of a study of ``total`` trials (baseline included), before any has run."""
    rest = max(total - 1, 0)
    if rest == 0:
        return []
    if search.strategy == "joint":
        return [Stage("joint", tuple(searched(search.space)), rest)]
    if search.stages is not None:
        return _explicit_stages(search, rest)
    return _default_stages(search, rest)


def replan(search: SearchConfig, total: int, done: dict[str, int]) -> list[Stage]:
    """The plan for a study that already ran ``done[stage]`` trials per stage.

    With an unchanged total this is ``make_plan``. Stages before the latest one that has run
    are closed at what they ran; the others share the rest in the fresh plan's proportions.
    """
    fresh = make_plan(search, total)
    started = [i for i, s in enumerate(fresh) if done.get(s.name, 0) > 0]
    if not started:
        return fresh
    current = started[-1]
    closed = [Stage(s.name, s.params, done.get(s.name, 0)) for s in fresh[:current]]
    rest = max(total - 1 - sum(s.trials for s in closed), 0)
    open_ = fresh[current:]
    if sum(s.trials for s in open_) == rest:
        shares = [s.trials for s in open_]
    else:
        shares = _split(rest, [max(s.trials, 1) for s in open_])
    # The current stage keeps what it already ran; later stages give way so the total holds.
    shares[0] = max(shares[0], done.get(open_[0].name, 0))
    excess = sum(shares) - max(rest, shares[0])
    for i in range(len(shares) - 1, 0, -1):
        cut = min(excess, shares[i])
        shares[i] -= cut
        excess -= cut
    return closed + [Stage(s.name, s.params, n) for s, n in zip(open_, shares, strict=True)]


def current_stage(plan: list[Stage], done: dict[str, int]) -> Stage | None:
    """The first stage that has not used its budget, or None when the plan is complete."""
    for stage in plan:
        if done.get(stage.name, 0) < stage.trials:
            return stage
    return None
