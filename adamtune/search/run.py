"""The staged search over an Optuna study (ask and tell), by one worker among any number.

Trial 0 is Adam's defaults. Each later trial belongs to a stage; its stage's parameters are
drawn for it (``drawing``) and every other parameter is fixed at the best trial of the
earlier stages. ``steps`` decides what runs next (the baseline, noise and confirmation runs, a
stage's draws, or waiting for trials other workers run); ``trial_runs`` asks, trains, records
and tells them: one at a time (``engine``) or, with ``search.batch``, up to K of a stage at a
time as one vectorised model (``batched``). Workers on one study coordinate through it alone
(``workers``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamtune import interrupts
from adamtune.config.schema import Settings
from adamtune.config.storage_url import redact
from adamtune.errors import SearchFailedError, first_line
from adamtune.search import trial_attrs
from adamtune.search.drawing import StageSampler
from adamtune.search.events import SearchObserver, SearchRun, SearchStart
from adamtune.search.lr_auto import ATTR, SEEDS, AutoRange, resolve_lr
from adamtune.search.options import SearchOptions
from adamtune.search.optuna_private import storage_of
from adamtune.search.plan import BASELINE, replan
from adamtune.search.rows import TrialRow, loss_of, row_of
from adamtune.search.samplers import make_pruner
from adamtune.search.steps import (
    Context,
    Run,
    Step,
    Stop,
    Wait,
    claimed_per_stage,
    done_per_stage,
    next_step,
    resuming,
)
from adamtune.search.storage import open_storage, release_storage, storage_errors, storage_failure
from adamtune.search.study import (
    CONFIG_ATTR,
    CONFIG_DIR_ATTR,
    check_same_config,
    relevant_config,
)
from adamtune.search.trial_runs import Asked, TrialRunner
from adamtune.search.winner import record_winner
from adamtune.search.workers import (
    CoreShare,
    Roll,
    agree_heartbeat,
    read_live,
    refuse_if_busy,
    storage_options,
    study_lock,
    take_over,
)
from adamtune.task.build import Task, build_task
from adamtune.train import threads
from adamtune.train.engine import warm_up
from adamtune.train.sizing import batch_size, use_threads

_MAX_ERRORS_IN_A_ROW = 3
log = logging.getLogger(__name__)


def _best(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The best single trial on the search's own seed and split (re-runs elsewhere score on
    other splits: not comparable)."""
    done = [
        (loss, t.number, t)
        for t in trials
        if (loss := loss_of(t)) is not None and not trial_attrs.is_rerun(t.user_attrs)
    ]
    return min(done, key=lambda d: d[:2])[2] if done else None


def open_study(
    settings: Settings,
    options: SearchOptions,
    storage: optuna.storages.BaseStorage | None = None,
    observer: SearchObserver | None = None,
) -> optuna.Study:
    storage = storage or open_storage(options.storage)
    name = options.study_name or settings.study_name
    with study_lock(storage, name):
        if options.take_over:  # before --fresh looks for live workers
            with contextlib.suppress(KeyError):
                take_over(optuna.load_study(study_name=name, storage=storage))
        if options.fresh:
            try:
                old = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                pass
            else:
                read_live(old)  # fails the trials of workers that are gone
                # Never delete a study another live worker is searching: training a trial
                # (running), or between trials and on the study's roll.
                refuse_if_busy(
                    old, elsewhere=0 if options.take_over else Roll(old).present()[0] - 1
                )
                trials = len(old.get_trials(deepcopy=False))
                optuna.delete_study(study_name=name, storage=storage)
                if observer is not None:
                    observer.study_deleted(name, trials, redact(options.storage))
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction="maximize" if settings.config.train.maximize else "minimize",
            load_if_exists=True,
            pruner=make_pruner(settings.config.search.pruner, settings.config.train.epochs),
        )
        check_same_config(study, settings.config, settings.doc.source)
        if CONFIG_ATTR not in study.user_attrs:
            study.set_user_attr(CONFIG_ATTR, relevant_config(settings.config))
            study.set_user_attr("adamtune_strategy", settings.config.search.strategy)
        folder = str(settings.base_dir.resolve())
        if study.user_attrs.get(CONFIG_DIR_ATTR) != folder:
            study.set_user_attr(CONFIG_DIR_ATTR, folder)
        # On the roll before the lock is let go: from here on this worker holds the study (it
        # has checked its config and caches its trials), and a --fresh elsewhere must not
        # delete it in the moment before this worker's first trial.
        Roll(study).sign()
    return study


def run_search(
    settings: Settings,
    options: SearchOptions,
    observer: SearchObserver | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchRun:
    """Run (or resume) the study that ``settings`` describe, up to its total budget, beside any
    other workers searching it."""
    task = build_task(settings, options.device)  # data and model are checked before storage
    pinned = use_threads(task, options.threads)
    if pinned:
        options = replace(options, threads=pinned)
    warm_up()
    storage = open_storage(options.storage, **storage_options(options.heartbeat))
    observer = observer or SearchObserver()
    try:
        study = open_study(settings, options, storage, observer)
        try:
            # The first worker runs the range test; the others wait for it and read its range.
            with study_lock(storage, study.study_name):
                agree_heartbeat(study, options.heartbeat)
                read_live(study)
                if settings.config.search.space.lr.auto and ATTR not in study.user_attrs:
                    observer.range_test_started(SEEDS)
                settings, lr_range = resolve_lr(settings, study, task)
        except BaseException:
            with contextlib.suppress(*storage_errors()):
                Roll(study).sign(leaving=True)  # off the roll: it never searched
            raise
        return _run(settings, options, task, study, observer, clock, lr_range)
    except storage_errors() as exc:  # locked past the wait, damaged, gone away
        raise storage_failure(options.storage, exc) from None
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
    runner = TrialRunner(config, task, study, observer, batch)
    trials = study.get_trials(deepcopy=False)
    done = done_per_stage(trials)
    rows = [row_of(t) for t in trials]
    resume = resuming(config.search, total, trials, rows, claimed_per_stage(trials))
    start = SearchStart(
        study.study_name,
        redact(options.storage),
        task.describe(),
        replan(config.search, total, done, extra=resume.extra),
        total,
        sum(done.values()),
        batch,
        batch_note,
        resume.confirmation,
        lr_range,
        threads.described(options.threads) if task.device.type == "cpu" else None,
    )
    observer.search_started(start)
    run = SearchRun(study.study_name, start.storage, start)
    roll = Roll(study)
    runner.alive = roll.sign  # a worker training a long trial stays on the roll
    try:
        ctx = Context(config, total, batch)
        run = _loop(run, ctx, runner, study, options, observer, clock, timeout, roll)
        try:  # where Optuna's tools look: the study's attributes and note
            record_winner(study)
        except Exception as exc:  # the search is done: a note that failed must not undo it
            log.warning("could not record the winner in the study: %s", first_line(exc))
        return run
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM to --jobs: wherever it landed
        runner.interrupt_pending()
        raise
    finally:
        with contextlib.suppress(*storage_errors()):  # a database that failed: said already
            roll.sign(leaving=True)


def _failing(states: list[str], task: Task, batch: int, error: str | None) -> str:
    """Why a search stops after trials (or batches of trials) failed in a row."""
    runs = f"{len(states)} {'batches of trials' if batch > 1 else 'trials'} in a row"
    if any(state != "oom" for state in states):
        return f"{runs} failed; the last: {error}"
    # Out of memory, batches were halved down to one trial at a time first.
    return (
        f"{runs} ran out of memory on {task.device}, one at a time ({error}); lower "
        f"data.batch_size (now {task.settings.config.data.batch_size}) or use a smaller model"
    )


def _loop(
    run: SearchRun,
    ctx: Context,
    runner: TrialRunner,
    study: optuna.Study,
    options: SearchOptions,
    observer: SearchObserver,
    clock: Callable[[], float],
    timeout: float | None,
    roll: Roll,
) -> SearchRun:
    began, waits = clock(), 0
    failing: list[str] = []  # how the trials (or batches) failed, while they fail in a row
    # Threads that follow the load already leave a sibling worker its cores.
    cores = CoreShare() if options.threads is None and not threads.following() else None
    sampling = StageSampler(ctx.config, batched=ctx.batch > 1)
    # Stages that searched and confirmed all they could, under budget: the rest of their
    # budget goes to the stages after them.
    complete: set[str] = set()
    while True:
        interrupts.check()
        if timeout is not None and clock() - began >= timeout:
            run.stopped_by = "timeout"
            break
        trials, ctx, step, asked = _decide(study, roll, cores, ctx, sampling, complete, runner)
        if isinstance(step, Stop):
            run.stopped_by = step.reason
            break
        if isinstance(step, Wait):
            observer.waiting(step.message)
            # Look again soon (a stage's last trial may end any moment), then less and less
            # often: each look reads the whole study, and a trainer may share this machine.
            time.sleep(min(options.poll * 1.5**waits, 1.0))
            waits += 1
            continue
        waits = 0
        assert isinstance(step, Run) and asked is not None
        rows = runner.train(asked, step.prunable)
        base = next((r for r in rows if r.stage == BASELINE), None)
        if base is not None and base.state == "failed":
            culprit = "train.step function" if ctx.config.train.step else "model or data"
            raise SearchFailedError(
                f"trial {base.number} (Adam's defaults) failed: {base.error}; fix the "
                f"{culprit}, then rerun (--debug shows the traceback)"
            )
        run.ran.extend(rows)
        _tell_observer(observer, rows, trials)
        ctx, failing = _after_failures(rows, ctx, failing, runner)
    _some_trial_completed(study)
    return run


def _decide(
    study: optuna.Study,
    roll: Roll,
    cores: CoreShare | None,
    ctx: Context,
    sampling: StageSampler,
    complete: set[str],
    runner: TrialRunner,
) -> tuple[list[FrozenTrial], Context, Step, Asked | None]:
    """The next step, decided (and its trials asked) under the study's lock, so that every
    other worker's trials are seen."""
    with study_lock(storage_of(study), study.study_name):
        trials = read_live(study)
        roll.sign()
        workers, here = roll.present()
        if cores is not None:
            cores.share(here)
        ctx = replace(ctx, workers=workers)
        step = next_step(trials, ctx, sampling, complete)
        asked = None
        if isinstance(step, Run):
            incumbent = next((t for t in trials if t.number == step.incumbent), None)
            runner.mirror(step.stage, trials, incumbent)  # the stage's pruner, up to date
            asked = runner.ask(step.stage, step.members)
    return trials, ctx, step, asked


def _tell_observer(
    observer: SearchObserver, rows: list[TrialRow], trials: list[FrozenTrial]
) -> None:
    """Each finished trial, with the best value so far (without reading the study again:
    the next step reads it anyway)."""
    best = _best(trials)
    best_row = row_of(best) if best else None
    for row in rows:
        if _improves(row, best_row):
            best_row = row
        observer.trial_finished(row, best_row.value if best_row else None)


def _improves(row: TrialRow, best: TrialRow | None) -> bool:
    """Whether ``row`` is a search trial that beats ``best`` (re-runs are not comparable)."""
    if row.confirms is not None or row.loss is None:
        return False
    return best is None or best.loss is None or row.loss < best.loss


def _after_failures(
    rows: list[TrialRow], ctx: Context, failing: list[str], runner: TrialRunner
) -> tuple[Context, list[str]]:
    """The failures in a row so far, and the batch to go on with. A failing batch raised once
    for all its trials: one failure, as for a single trial. Out of memory once may be another
    process's doing (that trial is drawn again); again and again, it is the trials' size."""
    failing = failing + [rows[-1].state] if rows[-1].state in ("failed", "oom") else []
    if rows[-1].state == "oom" and ctx.batch > 1:
        # K stacked trials hold K times one trial's memory: fewer together first.
        ctx = replace(ctx, batch=max(1, min(ctx.batch, len(rows)) // 2))
        runner.batched = ctx.batch > 1
        failing = []
        log.warning(
            "%d trials together ran out of memory; training %d together from now on",
            len(rows),
            ctx.batch,
        )
    if len(failing) >= _MAX_ERRORS_IN_A_ROW:
        raise SearchFailedError(_failing(failing, runner.task, ctx.batch, rows[-1].error))
    return ctx, failing


def _some_trial_completed(study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    if _best(trials) is None and not any(t.state == TrialState.RUNNING for t in trials):
        # (With trials still running elsewhere, this worker only waited for them: --timeout
        # came before the first of them finished. Nothing failed.)
        raise SearchFailedError(
            f"study {study.study_name!r} has no completed trial: every trial diverged, was "
            f"pruned or failed"
        )
