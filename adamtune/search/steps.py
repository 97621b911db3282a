"""The planner: what a worker trains next, from the study's trials so far.

``next_step`` reads top to bottom as a search runs:

1. Adam's defaults (trial 0), in the same batch as the first stage's first draws: the
   baseline teaches the stage nothing it needs before its draws, so it costs no round.
2. Each stage, drawn wide: as many of its draws as the batch holds, in one round when the
   engine holds the whole stage. A stage starts once every trial before it has finished
   (every worker then starts from the same incumbent: ``selection.incumbent_row``).
3. The final confirmation: the best candidates and the defaults on every extra seed slot,
   in one batch when the engine holds them all (``selection.confirm_due``).

A running trial counts toward the budget and the stage it uses, as if it had finished, so
workers never overshoot either; its parameters are pending draws that the stage's sampler
steers away from. A trial whose worker died is drawn again once, with the same parameters
(``retry_of``). The function only reads the trials: asking and training are the caller's
(``run``, under the study's lock from reading to asking, so two workers never take the same
step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from adamtune.config.schema import Config, SearchConfig
from adamtune.search import trial_attrs
from adamtune.search.drawing import StageSampler, is_joint
from adamtune.search.plan import (
    BASELINE,
    CONFIRM,
    NOISE,
    Resumed,
    Stage,
    capacity,
    current_stage,
    draws_again,
    replan,
    resumed,
)
from adamtune.search.rows import TrialRow, row_of
from adamtune.search.selection import begun, confirm_due, incumbent_row, select
from adamtune.search.space import encode, searched
from adamtune.search.study import counts_toward_budget, stage_of, status_of
from adamtune.search.trial_runs import Member
from adamtune.train.params import ADAM_DEFAULTS, AdamParams, fixed_values


@dataclass
class Run:
    """Trials to ask and train now (``stage`` is the stage whose budget and pruning they use;
    a member may name another stage in its attributes: the baseline, a noise run)."""

    stage: str
    members: list[Member]
    prunable: bool
    incumbent: int | None = None  # the trial the stage's pruner compares with, beside its own


@dataclass
class Wait:
    """Nothing to start until trials running elsewhere finish."""

    message: str


@dataclass
class Stop:
    # budget | exhausted (every choice tried, nothing left to confirm) | too_few (a total
    # raised once the confirmation began, by too little for a new draw and its re-runs)
    reason: str


Step = Run | Wait | Stop


@dataclass(frozen=True)
class Context:
    """What the planner knows besides the trials: the config, the study's total budget, the
    batch size and how many workers share the study now (this one included)."""

    config: Config
    total: int
    batch: int = 1
    workers: int = 1


def budget_key(trial: FrozenTrial) -> str:
    """The budget a trial uses: its stage's, or the confirmation's for a re-run."""
    return str(trial.user_attrs.get(trial_attrs.OF, stage_of(trial)))


def done_per_stage(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials that count toward the budget, by the stage whose budget they use."""
    done: dict[str, int] = {}
    for t in trials:
        if counts_toward_budget(t):
            done[budget_key(t)] = done.get(budget_key(t), 0) + 1
    return done


def claimed_per_stage(trials: list[FrozenTrial]) -> dict[str, int]:
    """``done_per_stage`` with the running trials counted as if they had finished."""
    claimed = done_per_stage(trials)
    for t in _running(trials):
        claimed[budget_key(t)] = claimed.get(budget_key(t), 0) + 1
    return claimed


def _running(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.RUNNING]


def resuming(
    search: SearchConfig,
    total: int,
    trials: list[FrozenTrial],
    rows: list[TrialRow],
    claimed: dict[str, int],
) -> Resumed:
    """``plan.resumed`` for a study's trials, their ``rows`` and the budget they claim
    (``claimed_per_stage``: running trials count, as for the budget)."""
    drawn = sum(n for key, n in claimed.items() if key not in (BASELINE, CONFIRM))
    started = begun(rows)
    raised = max((int(t.user_attrs.get(trial_attrs.REOPENED, 0)) for t in trials), default=0)
    return resumed(search, total, drawn, len(started), raised)


def _elsewhere(count: int) -> str:
    return f"{count} trial{'s' if count != 1 else ''} running elsewhere"


def _share(ctx: Context, wanted: int) -> int:
    """How many of ``wanted`` trials this worker takes at once: a batch, or its share."""
    return min(ctx.batch, -(-wanted // ctx.workers))


def next_step(
    trials: list[FrozenTrial],
    ctx: Context,
    sampling: StageSampler,
    complete: set[str],
) -> Step:
    """What to train next; ``complete`` collects stages that searched all they could under
    their budget (a stage of choices that tried them all): the rest goes to the stages after."""
    done, claimed = done_per_stage(trials), claimed_per_stage(trials)
    running = _running(trials)
    if sum(done.values()) >= ctx.total:
        return Stop("budget")
    if sum(claimed.values()) >= ctx.total:  # they may fail and need drawing again
        return Wait(f"waiting for the last trials: {_elsewhere(len(running))}")
    rows = [row_of(t) for t in trials]
    search = ctx.config.search
    if done.get(BASELINE, 0) == 0:
        first = next((t for t in running if budget_key(t) == BASELINE), None)
        if first is not None:
            return Wait(f"waiting for Adam's defaults (trial {first.number}): {_elsewhere(1)}")
        return _first_round(trials, ctx, sampling, complete)
    pending = {
        (t.user_attrs.get(trial_attrs.CONFIRMS), t.user_attrs.get(trial_attrs.SLOT))
        for t in running
    }
    resume = resuming(search, ctx.total, trials, rows, claimed)
    while True:
        plan = replan(search, ctx.total, claimed, frozenset(complete), resume.extra)
        stage = current_stage(plan, claimed, frozenset(complete))
        earlier = plan[: plan.index(stage)] if stage is not None else plan
        # A stage starts from the incumbent its predecessors chose: it waits for all of them.
        before = {BASELINE} | {s.name for s in earlier}
        blocking = [t for t in running if budget_key(t) in before]
        if blocking:
            return Wait(f"waiting for stage {budget_key(blocking[0])}: {_elsewhere(len(blocking))}")
        if stage is None:
            room = ctx.total - sum(claimed.values())
            return _confirmation(trials, rows, ctx, [s.name for s in plan], pending, resume, room)
        after = claimed.get(CONFIRM, 0) > 0  # a stage drawing again: the total was raised
        step = _in_stage(trials, rows, ctx, sampling, plan, stage, after)
        if isinstance(step, Run) and resume.reopening:  # draws of a raise after confirming
            for member in step.members:
                member.attrs[trial_attrs.REOPENED] = resume.reopening
        if step is not None:
            return step
        complete.add(stage.name)


def _first_round(
    trials: list[FrozenTrial], ctx: Context, sampling: StageSampler, complete: set[str]
) -> Run:
    """Adam's defaults, with the values the user pinned (the reference every gain is measured
    against), and, when trials train together, the first stage's first draws beside it."""
    space = ctx.config.search.space
    params = ADAM_DEFAULTS.with_values(fixed_values(space))
    baseline = Member.fixed(params, _coords(ctx.config, params), {trial_attrs.STAGE: BASELINE})
    claimed = claimed_per_stage(trials)
    plan = replan(ctx.config.search, ctx.total, claimed, frozenset(complete))
    stage = current_stage(plan, claimed, frozenset(complete))
    if stage is None or ctx.batch <= 1:
        return Run(BASELINE, [baseline], prunable=False)
    room = min(_share(ctx, stage.trials + 1) - 1, stage.trials)
    draws = _draws(trials, ctx, sampling, plan, stage, params, None, room)
    return Run(stage.name, [baseline, *draws.members], prunable=True)  # the baseline never is


def _coords(config: Config, params: AdamParams) -> dict[str, tuple[Any, BaseDistribution]]:
    """Coordinates of a parameter set that was not sampled, as the baseline records."""
    space = config.search.space
    return encode(params, searched(space), space, with_zero=is_joint(config, BASELINE))


def _in_stage(
    trials: list[FrozenTrial],
    rows: list[TrialRow],
    ctx: Context,
    sampling: StageSampler,
    plan: list[Stage],
    stage: Stage,
    confirmed: bool = False,
) -> Step | None:
    """The stage's next draws, a wait for its running ones, or None when it is done; the
    draws of a study raised after its confirmation began start from the ``confirmed``
    winner."""
    earlier = [s.name for s in plan[: plan.index(stage)]]
    if confirmed:
        won = select(rows, [s.name for s in plan], ctx.config.search.confirm.confidence).winner
        base_row = next((r for r in rows if won is not None and r.number == won.trial), None)
    else:
        base_row = incumbent_row(rows, earlier)
    base = base_row.params if base_row is not None and base_row.params else ADAM_DEFAULTS
    base = base.with_values(fixed_values(ctx.config.search.space))
    best_before = next((t for t in trials if base_row and t.number == base_row.number), None)
    mine = [t for t in trials if stage_of(t) == stage.name]
    searching = [t for t in mine if t.state == TrialState.RUNNING]
    ran = sum(1 for t in mine if counts_toward_budget(t)) + len(searching)
    choices = capacity(stage.params, ctx.config.search.space)
    wanted = stage.trials - ran if choices is None or ran < choices else 0
    if wanted > 0:
        step = _draws(trials, ctx, sampling, plan, stage, base, best_before, _share(ctx, wanted))
        step.incumbent = base_row.number if base_row is not None else None
        return step
    if searching:
        return Wait(f"waiting for stage {stage.name}: {_elsewhere(len(searching))}")
    return None


def _draws(
    trials: list[FrozenTrial],
    ctx: Context,
    sampling: StageSampler,
    plan: list[Stage],
    stage: Stage,
    base: AdamParams,
    best_before: FrozenTrial | None,
    size: int,
) -> Run:
    """``size`` of the stage's draws on top of the incumbent: first the retries of trials
    whose worker died, then new draws (a batch stays inside its stage: the next stage starts
    from this one's pick)."""
    retried = {t.user_attrs.get(trial_attrs.RETRY_OF) for t in trials}
    killed = [
        t
        for t in trials
        if stage_of(t) == stage.name
        and status_of(t) == "killed"
        and not trial_attrs.is_rerun(t.user_attrs)
        and t.number not in retried
    ]
    members = [
        Member(base, dict(t.params), {trial_attrs.RETRY_OF: t.number}, list(stage.params))
        for t in killed[:size]
    ]
    searching = [t for t in trials if stage_of(t) == stage.name and t.state == TrialState.RUNNING]
    pending = [dict(t.params) for t in searching] + [m.coords for m in members]
    draws: list[dict[str, Any]] = []
    for _ in range(size - len(members)):
        coords = sampling.draw(
            stage, plan.index(stage), trials, base, best_before, pending=pending + draws
        )
        if coords in draws:  # a stage of choices with fewer untried ones than K
            break
        draws.append(coords)
    members += [Member(base, coords, {}, list(stage.params)) for coords in draws]
    return Run(stage.name, members, prunable=True)


def _confirmation(
    trials: list[FrozenTrial],
    rows: list[TrialRow],
    ctx: Context,
    stages: list[str],
    pending: set[tuple[Any, Any]],
    resume: Resumed,
    room: int,
) -> Step:
    """The final confirmation's next slot (no more runs than ``room``, the budget left), a
    wait for its running runs, or the end."""
    due = confirm_due(rows, stages, resume.confirmation)
    due = [(r, s) for r, s in due if (r.number, s) not in pending]
    due = due[:room]  # never past the budget
    if due:
        return _reruns(ctx, due, rows)
    confirming = [t for t in _running(trials) if budget_key(t) == CONFIRM]
    if confirming:
        return Wait(f"waiting for the confirmation: {_elsewhere(len(confirming))}")
    # A confirmation began, and the budget left cannot hold a draw and its re-runs
    too_few = resume.extra is None and bool(begun(rows)) and draws_again(ctx.config.search)
    return Stop("too_few" if too_few else "exhausted")


def _reruns(ctx: Context, due: list[tuple[TrialRow, int]], rows: list[TrialRow]) -> Run:
    """Train trials again on other seed slots: as many together as the batch and this
    worker's share allow, every slot in one round (the engine trains each member on its own
    slot). The defaults' runs are ``noise`` runs, the candidates' ``confirm`` runs; all use
    the confirmation's budget."""
    members = []
    for row, slot in due[: _share(ctx, len(due))]:
        assert row.params is not None
        stage = NOISE if row.stage == BASELINE else CONFIRM
        killed = [
            r.number
            for r in rows
            if r.state == "killed" and r.confirms == row.number and r.slot == slot
        ]
        attrs = trial_attrs.rerun(stage, slot, row.number, CONFIRM, killed[0] if killed else None)
        members.append(Member.fixed(row.params, _coords(ctx.config, row.params), attrs))
    return Run(CONFIRM, members, prunable=False)
