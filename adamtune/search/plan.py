"""The stage plan: which parameters each stage searches, how many trials it gets, and how
many trials the final confirmation re-runs.

Default order (staged): lr -> betas (beta1 + beta2) -> eps -> weight_decay (with decoupled
decay) -> amsgrad -> schedule, then, in a study of 60 trials or more, ``local``: lr, beta1,
beta2 and weight decay drawn together within 3x of the incumbent's (``space.WINDOWS``). Every
stage after the one that searches lr re-tunes lr within 3x of the incumbent's
(``space.LR_FACTOR``: the schedule stage does so itself). A stage whose parameters are all
fixed in the space is left out (``schedule: [none]`` drops the schedule stage); the local stage
needs two of its four parameters searched.

Budget rule. The study's ``trials`` include the baseline (trial 0, Adam's defaults) and the
confirmation; the rest is split as follows:
- the final confirmation (``confirmation``) re-runs the best few candidates and the defaults
  on ``confirm.seeds - 1`` extra seed slots: at most a fifth of the budget;
- with fewer than 10 trials in all, only the first stage (normally lr) is tuned;
- a stage of choices only (amsgrad with lr pinned) gets one trial per combination the
  incumbent does not already use: trials are deterministic, so a repeat would teach nothing;
- the rest is shared by weight: lr 4, betas 3, weight_decay 3, schedule 2, local 2, eps 1,
  amsgrad 1, rounded by largest remainder, ties to the earlier stage. Under 60 trials there is
  no local stage: measured on ``benchmarks/quality.py``, its trials gain more in the earlier
  stages there.
Explicit ``search.stages`` take their ``trials`` in order (cut off where the budget ends, and
never more than a stage of choices can try); stages without ``trials`` share what is left
equally; leftover budget goes to the last stage that searches a continuous parameter.
When a study is resumed with a different total, stages already left behind keep the trials they
had, the stages still to come share the new remainder in the fresh plan's proportions, and
budget that no remaining stage can use goes to a local stage near the winner (a final
``refine`` stage that searches every parameter jointly where a study has no local stage:
its own stages, or joint). A total raised to 60 or more adds the local stage, which shares
the new trials with the stage in progress. A total raised after the confirmation has run
keeps back the re-runs of one more candidate (``resumed``): a draw no confirmation judged
could not change the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adamtune.config.schema import SearchConfig
from adamtune.config.space import SpaceConfig
from adamtune.search.space import LR_FACTOR, WINDOWS, is_window, searched

BASELINE = "defaults"
REFINE = "refine"
NOISE = "noise"  # Adam's defaults re-run on an extra seed slot
CONFIRM = "confirm"  # a candidate re-run on an extra seed slot
SMALL_STUDY = 10
LOCAL = "local"  # the final stage: lr, betas and weight decay together, near the incumbent
LOCAL_MIN = 60  # smaller studies have no local stage: their earlier stages need the trials
_LOCAL_WEIGHT = 2
CONFIRM_MIN = 30  # smaller studies measure no noise: the re-runs would take their budget
_CONFIRM_SHARE = 0.2  # of the budget, at most, for the final confirmation
_DEFAULT_STAGES: list[tuple[str, list[str], int]] = [
    ("lr", ["lr"], 4),
    ("betas", ["beta1", "beta2"], 3),
    ("eps", ["eps"], 1),
    ("weight_decay", ["weight_decay", "decoupled_weight_decay"], 3),
    ("amsgrad", ["amsgrad"], 1),
    ("schedule", ["schedule"], 2),
]


@dataclass(frozen=True)
class Stage:
    name: str
    params: tuple[str, ...]
    trials: int  # its draws


@dataclass(frozen=True)
class Confirmation:
    """The final confirmation: ``candidates`` parameter sets and Adam's defaults, each re-run
    on ``slots`` extra seed slots (trained together: ``batched.train_batch``)."""

    candidates: int = 0
    slots: int = 0

    @property
    def trials(self) -> int:
        return self.slots * (self.candidates + 1) if self.candidates else 0


@dataclass(frozen=True)
class _Spec:
    """A stage before budgeting: a weight, or an explicit number of trials."""

    name: str
    params: tuple[str, ...]
    weight: float
    trials: int | None = None


def capacity(params: tuple[str, ...] | list[str], space: SpaceConfig) -> int | None:
    """How many untried points a stage of choices only has (the incumbent's combination is
    already measured); None when the stage searches a continuous parameter."""
    sizes = []
    for param in params:
        if is_window(param):
            return None
        value = getattr(space, param)
        if not isinstance(value, list) or param == "schedule":  # a schedule's end is continuous
            return None
        sizes.append(len(value))
    return math.prod(sizes) - 1


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


def confirm_seeds(search: SearchConfig, total: int) -> int:
    """Seed slots a confirmed value is measured on in a study of ``total`` trials."""
    return search.confirm.seeds if total >= CONFIRM_MIN else 1


def confirmation(search: SearchConfig, total: int, extra: int = 0) -> Confirmation:
    """The final confirmation of a study of ``total`` trials: ``confirm.top`` candidates at
    most, as many as a fifth of the budget re-runs on every extra slot beside the defaults
    (at least one), and ``extra`` more (``resumed``)."""
    slots = confirm_seeds(search, total) - 1
    if slots <= 0 or not _specs(search, total):
        return Confirmation()
    fits = int(_CONFIRM_SHARE * total) // slots - 1
    return Confirmation(max(1, min(search.confirm.top, fits)) + extra, slots)


@dataclass(frozen=True)
class Resumed:
    """What a study does next once its confirmation may have begun (``resumed``)."""

    confirmation: Confirmation  # the candidates it confirms (every one on every extra slot)
    # Its candidates beyond a fresh study's (``replan``'s ``extra``); None: no stage draws again
    extra: int | None
    reopening: int  # the candidates raises added, for its new draws to record (0: none)


def resumed(search: SearchConfig, total: int, drawn: int, begun: int, raised: int) -> Resumed:
    """The confirmation of a study of ``total`` trials that made ``drawn`` stage draws and
    began the re-runs of ``begun`` candidates, and whether its stages draw again; ``raised``
    counts the candidates that raises of the total added to the confirmation so far (the
    draws they reopened record it: ``trial_attrs.REOPENED``).

    Until every candidate of its confirmation has begun, a study follows its plan (a total
    raised to one whose own confirmation takes more candidates draws by the plan, then
    confirms them). Once all have begun, a raise reopens the stages when the trials left
    hold a draw and the re-runs of one more candidate: new draws that nothing confirmed
    could never become the winner. Otherwise the stages draw no more, and the confirmation
    takes the candidates whose re-runs fit in what is left (those that began always
    finish): a raise too small for a draw and its re-runs trains nothing, and no candidate
    is measured on fewer slots than the others.
    """
    base = confirmation(search, total)
    slots = base.slots
    if not slots:
        return Resumed(base, 0, 0)
    planned = Confirmation(base.candidates + raised, slots)
    if total - 1 - drawn - planned.trials > 0 and begun < planned.candidates:
        return Resumed(planned, raised, raised)  # the plan's draws, then its confirmation
    fits = (total - 1 - drawn) // slots - 1
    now = max(begun, min(planned.candidates, fits))
    room = total - 1 - drawn - (begun + 2) * slots  # draws beside one more candidate
    if begun and begun >= now and room >= 1 and draws_again(search):
        return Resumed(Confirmation(begun + 1, slots), begun + 1 - base.candidates, raised + 1)
    return Resumed(Confirmation(now, slots), None, raised)


def draws_again(search: SearchConfig) -> bool:
    """Whether a raised total can be drawn: near the winner (the local stage), or, where a
    study has no local stage, by a refine stage over a space that is not only choices."""
    live = searched(search.space)
    return _local(search) is not None or capacity(live, search.space) is None


def _allot(specs: list[_Spec], rest: int, search: SearchConfig) -> list[int]:
    """Budgets for ``specs``: explicit and choice-only stages first (in order, capped), then
    the remainder by weight among the other continuous stages."""
    space = search.space
    caps = [capacity(s.params, space) for s in specs]
    budgets = [0] * len(specs)
    left = rest
    for i, (spec, cap) in enumerate(zip(specs, caps, strict=True)):
        if spec.trials is not None or cap is not None:
            want = spec.trials if spec.trials is not None else left
            budgets[i] = min(want, cap if cap is not None else want, left)
            left -= budgets[i]
    weighted = [
        i
        for i, (s, c) in enumerate(zip(specs, caps, strict=True))
        if s.trials is None and c is None
    ]
    for i, share in zip(weighted, _split(left, [specs[i].weight for i in weighted]), strict=True):
        budgets[i] = share
    if not weighted and left > 0:
        continuous = [i for i, c in enumerate(caps) if c is None]
        if continuous:
            budgets[continuous[-1]] += left
    return budgets


def _with_lr_factor(specs: list[_Spec], space: SpaceConfig) -> list[_Spec]:
    """Every stage after the first that searches lr re-tunes lr around the incumbent's (the
    schedule stage does so by itself)."""
    if not space.is_searched("lr"):
        return specs
    out, seen_lr = [], False
    for spec in specs:
        if seen_lr and "lr" not in spec.params and "schedule" not in spec.params:
            spec = _Spec(spec.name, (*spec.params, LR_FACTOR), spec.weight, spec.trials)
        seen_lr = seen_lr or "lr" in spec.params
        out.append(spec)
    return out


def _specs(
    search: SearchConfig, total: int = LOCAL_MIN, ran: frozenset[str] = frozenset()
) -> list[_Spec]:
    """The stages before budgeting; a default staged study of ``total`` trials, 60 or more
    (or one whose local stage has run: a lowered total keeps it), ends with the local stage."""
    live = searched(search.space)
    if search.strategy == "joint":
        return [_Spec("joint", tuple(live), 1.0)]
    if search.stages is not None:
        specs = [
            _Spec(s.name or "+".join(s.params), tuple(s.params), 1.0, s.trials)
            for s in search.stages
        ]
        return _with_lr_factor(specs, search.space)
    specs = [_Spec(n, tuple(p for p in ps if p in live), w) for n, ps, w in _DEFAULT_STAGES]
    specs = _with_lr_factor([s for s in specs if s.params], search.space)
    local = _local(search)
    if (total >= LOCAL_MIN or LOCAL in ran) and local is not None:
        specs.append(local)
    return specs


def _local(search: SearchConfig) -> _Spec | None:
    """The local stage of a default staged study, when two of its parameters are searched."""
    if search.strategy == "joint" or search.stages is not None:
        return None
    live = searched(search.space)
    windows = tuple(WINDOWS[p] for p in WINDOWS if p in live)
    return _Spec(LOCAL, windows, _LOCAL_WEIGHT) if len(windows) > 1 else None


def schedule_stage(search: SearchConfig) -> str | None:
    """The staged search's stage that searches the lr schedule (the decay question), if any."""
    if search.strategy == "joint":
        return None
    return next((s.name for s in _specs(search) if "schedule" in s.params), None)


def _rest(search: SearchConfig, total: int, extra: int = 0) -> int:
    """The budget of the stages: the total less the baseline and the confirmation."""
    return max(total - 1 - confirmation(search, total, extra).trials, 0)


def make_plan(search: SearchConfig, total: int) -> list[Stage]:
    """The stages of a study of ``total`` trials (baseline and confirmation included), before
    any has run."""
    specs = _specs(search, total)
    rest = _rest(search, total)
    if rest == 0 or not specs:
        return []
    if search.strategy == "staged" and search.stages is None and total < SMALL_STUDY:
        first = specs[0]
        cap = capacity(first.params, search.space)
        return [Stage(first.name, first.params, min(rest, cap if cap is not None else rest))]
    budgets = _allot(specs, rest, search)
    return [Stage(s.name, s.params, b) for s, b in zip(specs, budgets, strict=True) if b > 0]


def replan(
    search: SearchConfig,
    total: int,
    done: dict[str, int],
    finished: frozenset[str] = frozenset(),
    extra: int | None = 0,
) -> list[Stage]:
    """The plan for a study that already ran ``done[stage]`` trials per stage; ``finished``
    names stages that searched all they could, even under their budget; the confirmation
    takes ``extra`` candidates more than a fresh study's (``resumed``; None: the stages draw
    no more).

    With an unchanged total this is ``make_plan``. Stages before the latest one that has run
    (and that one, once finished) are closed at what they ran; the others share the rest in
    the fresh plan's proportions; what none of them can use goes to a final local stage (near
    the winner), or, where a study has none (joint, or its own stages), to ``refine``.
    """
    # Stage order comes from the full structure: a small plan (under 10 trials) lists only
    # lr, yet a stage that already ran must stay closed when the total is lowered.
    specs = _specs(search, total, frozenset(name for name, n in done.items() if n > 0))
    live = searched(search.space)
    if extra is None:  # closed: every stage at what it ran
        stages = [Stage(s.name, s.params, done[s.name]) for s in specs if done.get(s.name)]
        refined = [Stage(REFINE, tuple(live), done[REFINE])] if done.get(REFINE) else []
        return stages + refined
    fresh = make_plan(search, total)
    started = [i for i, s in enumerate(specs) if done.get(s.name, 0) > 0]
    if not started:
        return fresh
    planned = {s.name: s.trials for s in fresh}
    current = started[-1] + (specs[started[-1]].name in finished)
    last = len(specs) - 1
    before = sum(done.get(s.name, 0) for s in specs[:last])
    if (
        current == last
        and specs[last].name != LOCAL
        and done.get(specs[last].name, 0) > 0
        and before + planned.get(specs[last].name, 0) != _rest(search, total, extra)
    ):
        # The last stage has run and the total changed since: it closes at what it ran, and
        # the difference goes to a refine stage. The local stage instead takes it: it
        # searches near the winner, which is what a raised total is for.
        current += 1
    if done.get(REFINE, 0):  # a refine stage ran after every stage: they all stay closed
        current = len(specs)
    closed = [Stage(s.name, s.params, done[s.name]) for s in specs[:current] if done.get(s.name)]
    rest = max(_rest(search, total, extra) - sum(s.trials for s in closed), 0)
    open_ = specs[current:]
    if sum(planned.get(s.name, 0) for s in open_) == rest:
        shares = [planned.get(s.name, 0) for s in open_]  # an unchanged plan stays as it was
    else:
        shares = _allot(open_, rest, search)
    ran = done.get(open_[0].name, 0) if open_ else 0
    if open_ and shares[0] < ran:  # the current stage keeps what it ran; later ones share
        shares = [ran, *_allot(open_[1:], max(rest - ran, 0), search)]
    plan = closed + [
        Stage(s.name, s.params, n)
        for s, n in zip(open_, shares, strict=True)
        if n > 0 or done.get(s.name)  # a stage the new total leaves nothing is not shown
    ]
    leftover = max(rest - sum(shares), 0)
    local = _local(search)
    if leftover and local is not None and not done.get(REFINE, 0):
        plan.append(Stage(LOCAL, local.params, leftover))
    elif (leftover or done.get(REFINE, 0)) and capacity(live, search.space) is None:
        plan.append(Stage(REFINE, tuple(live), max(leftover, done.get(REFINE, 0))))
    return plan


def current_stage(
    plan: list[Stage], done: dict[str, int], finished: frozenset[str] = frozenset()
) -> Stage | None:
    """The first stage that has not used its budget nor finished, or None when the plan's
    stages are complete (the confirmation comes next)."""
    for stage in plan:
        if done.get(stage.name, 0) < stage.trials and stage.name not in finished:
            return stage
    return None
