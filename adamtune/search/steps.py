"""What a worker runs next in a staged study, from the trials it holds: finished ones and the
ones other workers are running.

The order is the baseline (Adam's defaults), the noise runs, then each stage's draws and its
confirmation runs. A running trial counts toward the budget and the stage it uses, as if it
had finished, so workers never overshoot either; its parameters are pending draws that the
stage's sampler steers away from. What depends on results waits for them: a stage starts once
every trial before it has finished (every worker then fixes the same values), and a stage
confirms once its search trials have all finished. A trial whose worker died is drawn again
once, with the same parameters (``retry_of``).

The caller holds the study's lock (``workers.study_lock``) from reading the trials until the
trials of a ``Run`` are asked, so two workers never take the same step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from adamtune.config import Settings
from adamtune.rows import TrialRow, row_of
from adamtune.search.drawing import StageSampler, is_joint
from adamtune.search.plan import BASELINE, Stage, capacity, current_stage, replan
from adamtune.search.selection import CONFIRM, NOISE, confirm_due, noise_due, search_due, select
from adamtune.search.trial_runs import Member, TrialRunner
from adamtune.space import ADAM_DEFAULTS, AdamParams, encode, fixed_values, searched
from adamtune.study import counts_toward_budget, stage_of, status_of


@dataclass
class Run:
    """Trials to ask and train now."""

    stage: str
    members: list[Member]
    prunable: bool
    slot: int = 0


@dataclass
class Wait:
    """Nothing to start until trials running elsewhere finish."""

    message: str


@dataclass
class Stop:
    reason: str  # budget | exhausted (every choice tried)


Step = Run | Wait | Stop


def budget_key(trial: FrozenTrial) -> str:
    """The stage whose budget a trial uses: a confirmation run uses the stage it confirms."""
    return str(trial.user_attrs.get("of", stage_of(trial)))


def _running(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.RUNNING]


def _elsewhere(count: int) -> str:
    return f"{count} trial{'s' if count != 1 else ''} running elsewhere"


class Steps:
    def __init__(
        self, settings: Settings, runner: TrialRunner, batch: int = 1, seeds: int = 1
    ) -> None:
        self.config = settings.config
        self.space = self.config.search.space
        self.runner = runner
        self.batch = batch
        self.seeds = seeds  # seed slots of a confirmed value (1: no noise, no confirmation)
        self.sampling = StageSampler(self.config, batched=batch > 1)
        self.workers = 1  # searching the study now, this one included

    # --- counting --------------------------------------------------------------------------
    def done_per_stage(self, trials: list[FrozenTrial]) -> dict[str, int]:
        """Trials that count toward the budget, by the stage whose budget they use."""
        done: dict[str, int] = {}
        for t in trials:
            if counts_toward_budget(t):
                done[budget_key(t)] = done.get(budget_key(t), 0) + 1
        return done

    def claimed_per_stage(self, trials: list[FrozenTrial]) -> dict[str, int]:
        """``done_per_stage`` with the running trials counted as if they had finished."""
        claimed = self.done_per_stage(trials)
        for t in _running(trials):
            claimed[budget_key(t)] = claimed.get(budget_key(t), 0) + 1
        return claimed

    def incumbent(
        self, trials: list[FrozenTrial], rows: list[TrialRow], plan: list[Stage], stage: Stage
    ) -> tuple[AdamParams, FrozenTrial | None]:
        """The winner of the baseline and the stages before ``stage`` (``noise.select``), and
        its params with the user's fixed values applied."""
        earlier = [s.name for s in plan[: plan.index(stage)]]
        winner = select(rows, earlier, self.config.search.confirm.confidence, final=False).winner
        best = next((t for t in trials if winner and t.number == winner.trial), None)
        params = winner.params if winner else ADAM_DEFAULTS
        return params.with_values(fixed_values(self.space)), best

    # --- members ---------------------------------------------------------------------------
    def _coords(self, params: AdamParams) -> dict[str, tuple[Any, BaseDistribution]]:
        """Coordinates of a parameter set that was not sampled, as the baseline records."""
        joint = is_joint(self.config, BASELINE)
        return encode(params, searched(self.space), self.space, with_zero=joint)

    def baseline(self) -> Run:
        """Adam's defaults, with the values the user pinned: the reference every gain is
        measured against, and a point the first stage's sampler can learn from."""
        params = ADAM_DEFAULTS.with_values(fixed_values(self.space))
        return Run(BASELINE, [Member.fixed(params, self._coords(params), {})], prunable=False)

    def reruns(
        self,
        stage_name: str,
        due: list[tuple[TrialRow, int]],
        rows: list[TrialRow],
    ) -> Run:
        """Train trials again on another seed slot (noise and confirmation runs): of one slot,
        as many together as the batch and this worker's share of ``due`` allow."""
        slot = due[0][1]
        members = []
        size = min(self.batch, -(-len(due) // self.workers))
        for row, _ in [d for d in due if d[1] == slot][:size]:
            assert row.params is not None
            attrs: dict[str, Any] = {"slot": slot, "confirms": row.number}
            if stage_name == CONFIRM:
                attrs["of"] = row.stage
            killed = [
                r.number
                for r in rows
                if r.state == "killed" and r.confirms == row.number and r.slot == slot
            ]
            if killed:
                attrs["retry_of"] = killed[0]
            members.append(Member.fixed(row.params, self._coords(row.params), attrs))
        return Run(stage_name, members, prunable=False, slot=slot)

    # --- the next step ---------------------------------------------------------------------
    def next(
        self, trials: list[FrozenTrial], total: int, complete: set[str], workers: int = 1
    ) -> Step:
        """What to run next; ``complete`` collects stages that searched and confirmed all they
        could under budget (the rest of it goes to the stages after them). With ``workers``
        searching, a batch takes this worker's share of what is due, not all of it."""
        self.workers = workers
        done, claimed = self.done_per_stage(trials), self.claimed_per_stage(trials)
        running = _running(trials)
        if sum(done.values()) >= total:
            return Stop("budget")
        if sum(claimed.values()) >= total:  # they may fail and need drawing again
            return Wait(f"waiting for the last trials: {_elsewhere(len(running))}")
        rows = [row_of(t) for t in trials]
        if done.get(BASELINE, 0) == 0:
            first = next((t for t in running if budget_key(t) == BASELINE), None)
            if first is not None:
                return Wait(f"waiting for Adam's defaults (trial {first.number}): {_elsewhere(1)}")
            return self.baseline()
        pairs = {(t.user_attrs.get("confirms"), t.user_attrs.get("slot")) for t in running}
        noise = [(r, s) for r, s in noise_due(rows, self.seeds) if (r.number, s) not in pairs]
        if noise:
            return self.reruns(NOISE, noise, rows)
        while True:
            plan = replan(self.config.search, total, claimed, frozenset(complete))
            stage = current_stage(plan, claimed, frozenset(complete))
            earlier = plan[: plan.index(stage)] if stage is not None else plan
            # The noise only sets the bar a stage's winner must clear: the first stage draws
            # and confirms from the defaults without it; the stages after wait for it.
            before = {BASELINE, NOISE} | {s.name for s in earlier} if earlier else {BASELINE}
            blocking = [t for t in running if budget_key(t) in before]
            if blocking:
                stage_name = budget_key(blocking[0])
                return Wait(f"waiting for stage {stage_name}: {_elsewhere(len(blocking))}")
            if stage is None:  # only choices left, and all of them tried
                return Stop("exhausted")
            step = self._in_stage(trials, rows, plan, stage, running, pairs)
            if step is not None:
                return step
            complete.add(stage.name)

    def _in_stage(
        self,
        trials: list[FrozenTrial],
        rows: list[TrialRow],
        plan: list[Stage],
        stage: Stage,
        running: list[FrozenTrial],
        pairs: set[tuple[Any, Any]],
    ) -> Step | None:
        """The stage's next step: draws, then (once they finished) confirmation runs; None
        when it has nothing left to do."""
        base, best_before = self.incumbent(trials, rows, plan, stage)
        self.runner.mirror(stage.name, trials, best_before)
        mine = [t for t in trials if stage_of(t) == stage.name]
        searching = [t for t in mine if t.state == TrialState.RUNNING]
        ran = sum(1 for t in mine if counts_toward_budget(t)) + len(searching)
        if searching and ran >= stage.search:
            # Past its planned draws a stage draws more only for trials that did not complete
            # (pruned, diverged), and it confirms the candidates its finished trials name: both
            # wait for the running ones (a running trial is not a failed one).
            return Wait(f"waiting for stage {stage.name}: {_elsewhere(len(searching))}")
        wanted = search_due(rows, base, stage, ran, capacity(stage.params, self.space))
        if wanted:
            return self._draws(stage, plan, trials, base, best_before, wanted, searching)
        due = [(r, s) for r, s in confirm_due(rows, base, stage, ran) if (r.number, s) not in pairs]
        if due:
            return self.reruns(CONFIRM, due, rows)
        confirming = [t for t in running if budget_key(t) == stage.name]
        if confirming:
            return Wait(f"waiting for stage {stage.name}: {_elsewhere(len(confirming))}")
        return None

    def _draws(
        self,
        stage: Stage,
        plan: list[Stage],
        trials: list[FrozenTrial],
        base: AdamParams,
        best_before: FrozenTrial | None,
        wanted: int,
        searching: list[FrozenTrial],
    ) -> Run:
        """Up to a batch of the stage's draws on top of the incumbent: first the retries of
        trials whose worker died, then new draws (a batch stays inside its stage: the next
        stage starts from this one's best)."""
        size = min(self.batch, -(-wanted // self.workers))
        retried = {t.user_attrs.get("retry_of") for t in trials}
        killed = [
            t
            for t in trials
            if stage_of(t) == stage.name
            and status_of(t) == "killed"
            and "confirms" not in t.user_attrs
            and t.number not in retried
        ]
        members = [
            Member(base, dict(t.params), {"retry_of": t.number}, list(stage.params))
            for t in killed[:size]
        ]
        pending = [dict(t.params) for t in searching] + [m.coords for m in members]
        draws: list[dict[str, Any]] = []
        for _ in range(size - len(members)):
            coords = self.sampling.draw(
                stage, plan.index(stage), trials, base, best_before, pending=pending + draws
            )
            if coords in draws:  # a stage of choices with fewer untried ones than K
                break
            draws.append(coords)
        members += [Member(base, coords, {}, list(stage.params)) for coords in draws]
        return Run(stage.name, members, prunable=True)
