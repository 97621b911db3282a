"""The staged search over an Optuna study (ask and tell).

Trial 0 is Adam's defaults. Each later trial belongs to a stage; its stage's parameters are
drawn for it (``drawing``) and every other parameter is fixed at the best trial of the
earlier stages. This module decides what runs next (the baseline, noise and confirmation
runs, a stage's draws); ``trial_runs`` asks, trains, records and tells them: one at a time
(``engine``) or, with ``search.batch``, up to K of a stage at a time as one vectorised model
(``batched``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from adamtune.batched import batch_size
from adamtune.config import Settings
from adamtune.drawing import StageSampler, is_joint
from adamtune.errors import SearchFailedError
from adamtune.lr_range import ATTR, SEEDS, AutoRange, resolve_lr
from adamtune.noise import CONFIRM, NOISE, confirm_due, noise_due, search_due, select
from adamtune.plan import BASELINE, Stage, capacity, confirm_seeds, current_stage, replan
from adamtune.rows import TrialRow, row_of
from adamtune.samplers import make_pruner
from adamtune.space import (
    ADAM_DEFAULTS,
    AdamParams,
    encode,
    fixed_values,
    searched,
)
from adamtune.storage import open_storage, redact, release_storage
from adamtune.study import (
    CONFIG_ATTR,
    check_same_config,
    counts_toward_budget,
    fail_orphans,
    refuse_if_busy,
    relevant_config,
    stage_of,
)
from adamtune.task import Task, build_task
from adamtune.trial_runs import Member, TrialRunner

_MAX_ERRORS_IN_A_ROW = 3


@dataclass
class SearchOptions:
    storage: str
    study_name: str | None = None
    trials: int | None = None
    timeout: float | None = None
    device: str | None = None
    fresh: bool = False
    batch: int | Literal["auto"] | None = None  # overrides search.batch
    take_over: bool = False  # fail the running trials of another worker (known to be gone)


@dataclass
class SearchStart:
    study: str
    storage: str  # redacted
    task: str
    plan: list[Stage]
    total: int
    done: int  # trials already in the study that count toward its budget
    batch: int = 1  # trials trained together
    batch_note: str | None = None  # why a batch was asked for and not used
    seeds: int = 1  # seed slots behind a confirmed value (1: no confirmation)
    lr_range: AutoRange | None = None  # the range ``lr: auto`` searches


class SearchObserver:
    """Progress hooks; the CLI renders them, library users may subclass. All are no-ops."""

    def range_test_started(self, seeds: int) -> None: ...

    def search_started(self, start: SearchStart) -> None: ...

    def trial_started(self, number: int, stage: str, params: AdamParams) -> None: ...

    def epoch_finished(self, number: int, epoch: int, epochs: int, value: float) -> None: ...

    def trial_finished(self, row: TrialRow, best: float | None) -> None: ...


@dataclass
class SearchRun:
    """What one call of ``run_search`` did."""

    study: str
    storage: str  # redacted
    started: SearchStart
    ran: list[TrialRow] = field(default_factory=list)
    stopped_by: str = "budget"  # budget | timeout | exhausted (every choice tried)


def _best(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The best single trial on the search's own seed and split (re-runs elsewhere score on
    other splits: not comparable)."""
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None and "confirms" not in t.user_attrs
    ]
    return min(done, key=lambda t: (t.value, t.number)) if done else None


class _Search:
    def __init__(
        self,
        settings: Settings,
        task: Task,
        study: optuna.Study,
        observer: SearchObserver,
        batch: int = 1,
        seeds: int = 1,
    ) -> None:
        self.settings, self.task, self.study = settings, task, study
        self.config = settings.config
        self.space = self.config.search.space
        self.batch = batch
        self.seeds = seeds  # seed slots of a confirmed value (1: no noise, no confirmation)
        self.sampling = StageSampler(self.config, batched=batch > 1)
        self.runner = TrialRunner(self.config, task, study, observer, batch)

    # --- reading the study ---------------------------------------------------------------
    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def done_per_stage(self, trials: list[FrozenTrial]) -> dict[str, int]:
        """Trials that count toward the budget, by the stage whose budget they use: a
        confirmation run uses the budget of the stage it confirms."""
        done: dict[str, int] = {}
        for t in trials:
            if counts_toward_budget(t):
                key = str(t.user_attrs.get("of", stage_of(t)))
                done[key] = done.get(key, 0) + 1
        return done

    def searched_in(self, trials: list[FrozenTrial], stage: str) -> int:
        return sum(1 for t in trials if stage_of(t) == stage and counts_toward_budget(t))

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

    # --- running trials --------------------------------------------------------------------
    def run_reruns(self, stage_name: str, reruns: list[tuple[TrialRow, int]]) -> list[TrialRow]:
        """Train trials again on another seed slot (noise and confirmation runs): all of one
        slot together when batching, else the first alone."""
        slot = reruns[0][1]
        reruns = [r for r in reruns if r[1] == slot][: self.batch]
        members = []
        for row, _ in reruns:
            assert row.params is not None
            attrs: dict[str, Any] = {"slot": slot, "confirms": row.number}
            if stage_name == CONFIRM:
                attrs["of"] = row.stage
            members.append(Member.fixed(row.params, self._coords(row.params), attrs))
        return self.runner.run(stage_name, members, prunable=False, slot=slot)

    def _coords(self, params: AdamParams) -> dict[str, tuple[Any, BaseDistribution]]:
        """Coordinates of a parameter set that was not sampled, as the baseline records."""
        joint = is_joint(self.config, BASELINE)
        return encode(params, searched(self.space), self.space, with_zero=joint)

    def run_baseline(self) -> list[TrialRow]:
        """Adam's defaults, with the values the user pinned: the reference every gain is
        measured against, and a point the first stage's sampler can learn from."""
        baseline = ADAM_DEFAULTS.with_values(fixed_values(self.space))
        rows = self.runner.run(
            BASELINE, [Member.fixed(baseline, self._coords(baseline), {})], prunable=False
        )
        if rows[0].state == "failed":
            raise SearchFailedError(
                f"trial {rows[0].number} (Adam's defaults) failed: {rows[0].error}; fix the "
                f"model or data, then rerun (--debug shows the traceback)"
            )
        return rows


def open_study(
    settings: Settings, options: SearchOptions, storage: optuna.storages.BaseStorage | None = None
) -> optuna.Study:
    storage = storage or open_storage(options.storage)
    name = options.study_name or settings.study_name
    if options.fresh:
        with contextlib.suppress(KeyError):
            old = optuna.load_study(study_name=name, storage=storage)
            fail_orphans(old)  # never delete a study another live worker is searching
            refuse_if_busy(old, options.take_over)
            optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="minimize",
        load_if_exists=True,
        pruner=make_pruner(settings.config.search.pruner, settings.config.train.epochs),
    )
    check_same_config(study, settings.config, settings.doc.source)
    if CONFIG_ATTR not in study.user_attrs:
        study.set_user_attr(CONFIG_ATTR, relevant_config(settings.config))
        study.set_user_attr("adamtune_strategy", settings.config.search.strategy)
    return study


def run_search(
    settings: Settings,
    options: SearchOptions,
    observer: SearchObserver | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchRun:
    """Run (or resume) the study that ``settings`` describe, up to its total budget."""
    task = build_task(settings, options.device)  # data and model are checked before storage
    storage = open_storage(options.storage)
    observer = observer or SearchObserver()
    try:
        study = open_study(settings, options, storage)
        fail_orphans(study)
        refuse_if_busy(study, options.take_over)
        if settings.config.search.space.lr.auto and ATTR not in study.user_attrs:
            observer.range_test_started(SEEDS)
        settings, lr_range = resolve_lr(settings, study, task)
        return _run(settings, options, task, study, observer, clock, lr_range)
    finally:
        release_storage(storage)


def _run(
    settings: Settings,
    options: SearchOptions,
    task: Task,
    study: optuna.Study,
    observer: SearchObserver,
    clock: Callable[[], float],
    lr_range: AutoRange | None = None,
) -> SearchRun:
    config = settings.config
    total = options.trials or config.search.trials
    timeout = options.timeout if options.timeout is not None else config.search.timeout
    batch, batch_note = batch_size(task, options.batch or config.search.batch)
    search = _Search(settings, task, study, observer, batch, confirm_seeds(config.search, total))
    trials = search.trials()
    done = search.done_per_stage(trials)
    plan = replan(config.search, total, done)
    start = SearchStart(
        study.study_name,
        redact(options.storage),
        task.describe(),
        plan,
        total,
        sum(done.values()),
        batch,
        batch_note,
        search.seeds,
        lr_range,
    )
    observer.search_started(start)
    run = SearchRun(study.study_name, start.storage, start)
    began, errors_in_a_row = clock(), 0
    # Stages that searched and confirmed all they could, under budget: the rest of their
    # budget goes to the stages after them.
    complete: set[str] = set()
    while True:
        trials = search.trials()
        done = search.done_per_stage(trials)
        if sum(done.values()) >= total:
            break
        if timeout is not None and clock() - began >= timeout:
            run.stopped_by = "timeout"
            break
        rows = [row_of(t) for t in trials]
        noise = noise_due(rows, search.seeds)
        if done.get(BASELINE, 0) == 0:
            rows = search.run_baseline()
        elif noise:
            rows = search.run_reruns(NOISE, noise)
        else:
            plan = replan(config.search, total, done, frozenset(complete))
            stage = current_stage(plan, done, frozenset(complete))
            if stage is None:  # only choices left, and all of them tried
                run.stopped_by = "exhausted"
                break
            base, best_before = search.incumbent(trials, rows, plan, stage)
            search.runner.mirror(stage.name, trials, best_before)
            ran = search.searched_in(trials, stage.name)
            wanted = search_due(rows, base, stage, ran, capacity(stage.params, search.space))
            if not wanted:
                reruns = confirm_due(rows, base, stage, ran)
                if not reruns:
                    complete.add(stage.name)
                    continue
                rows = search.run_reruns(CONFIRM, reruns)
            else:
                # A batch stays inside its stage: the next stage starts from this one's best.
                size = min(batch, wanted, total - sum(done.values()))
                draws: list[dict[str, Any]] = []
                for _ in range(size):
                    coords = search.sampling.draw(
                        stage, plan.index(stage), trials, base, best_before, pending=draws
                    )
                    if coords in draws:  # a stage of choices with fewer untried ones than K
                        break
                    draws.append(coords)
                # Sampled members: the stage's values drawn on top of the incumbent's.
                members = [Member(base, coords, {}, list(stage.params)) for coords in draws]
                rows = search.runner.run(stage.name, members, prunable=True)
        run.ran.extend(rows)
        # The best so far without reading the study again: the next iteration reads it anyway.
        best = _best(trials)
        best_value = best.value if best else None
        for row in rows:
            mine = row.value if row.confirms is None else None
            values = [v for v in (best_value, mine) if v is not None]
            best_value = min(values) if values else None
            observer.trial_finished(row, best_value)
        # A failing batch raised once for all its trials: one error, as for a single trial.
        errors_in_a_row = errors_in_a_row + 1 if rows[-1].state == "failed" else 0
        if errors_in_a_row >= _MAX_ERRORS_IN_A_ROW:
            raise SearchFailedError(
                f"{errors_in_a_row} trials in a row failed; the last: {rows[-1].error}"
            )
    if _best(trials) is None:  # ``trials`` was read after the last trial finished
        raise SearchFailedError(
            f"study {study.study_name!r} has no completed trial: every trial diverged, was "
            f"pruned or failed"
        )
    return run
