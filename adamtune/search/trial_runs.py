"""Running a group of study trials: one Optuna trial asked per member, the members trained
(alone, or together as one batch: ``batched``), what happened recorded and told to the study.

Each trial records its stage, its full parameter set (``adam``), the worker that ran it, its
status, epochs, time and learning curves (``study``). Pruning is asked of a per-stage mirror
of the study (``pruning``): each stage is judged against its own trials and its incumbent.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from adamtune import interrupts
from adamtune.config.schema import Config
from adamtune.errors import first_line
from adamtune.search import trial_attrs
from adamtune.search.drawing import is_joint
from adamtune.search.optuna_private import storage_of, trial_id
from adamtune.search.pruning import PruneMirror, halving
from adamtune.search.rows import TrialRow, finite_or_none, row_of
from adamtune.search.samplers import PresetSampler
from adamtune.search.space import record, suggest
from adamtune.search.storage import write_trial
from adamtune.search.study import stage_of
from adamtune.search.workers import Heartbeat, worker_id
from adamtune.task.build import Task
from adamtune.train.batched import train_batch
from adamtune.train.engine import TrialOutcome, out_of_memory, release_memory, train_trial
from adamtune.train.params import AdamParams

log = logging.getLogger(__name__)


class TrialObserver(Protocol):
    """The progress hooks a run of trials calls (``search.SearchObserver`` has them)."""

    def trial_started(self, number: int, stage: str, params: AdamParams) -> None: ...

    def epoch_finished(self, number: int, epoch: int, epochs: int, value: float) -> None: ...


@dataclass
class Member:
    """One trial to ask: its base parameters, the coordinates to record (and, for a sampled
    member, the Adam parameters ``names`` drawn through them) and extra user attributes."""

    base: AdamParams
    coords: dict[str, Any]
    attrs: dict[str, Any]
    names: list[str] | None = None  # None: train ``base`` exactly
    recorded: dict[str, tuple[Any, BaseDistribution]] = field(default_factory=dict)

    @classmethod
    def fixed(
        cls,
        base: AdamParams,
        recorded: dict[str, tuple[Any, BaseDistribution]],
        attrs: dict[str, Any],
    ) -> Member:
        """A member trained at exactly ``base``, recorded at the coordinates ``recorded``."""
        return cls(base, {k: v for k, (v, _) in recorded.items()}, attrs, None, recorded)


@dataclass
class Asked:
    """Trials started in the study for ``members``, not trained yet."""

    stage: str
    members: list[Member]
    trials: list[optuna.Trial]
    params: list[AdamParams]


class TrialRunner:
    """Asks, trains, records and tells the trials of one study."""

    def __init__(
        self,
        config: Config,
        task: Task,
        study: optuna.Study,
        observer: TrialObserver,
        batch: int = 1,
    ) -> None:
        self.config, self.task, self.study, self.observer = config, task, study, observer
        self.space = config.search.space
        self.preset = PresetSampler()  # every value is chosen before the trial is asked
        study.sampler = self.preset
        self.mirrors: dict[str, PruneMirror] = {}
        self.mirror_prunes = not isinstance(study.pruner, optuna.pruners.HyperbandPruner)
        self.batched = batch > 1
        self.alive: Callable[[], None] | None = None  # called with every heartbeat
        self.pending: dict[int, optuna.Trial] = {}  # asked and not told yet, by number

    def mirror(
        self, stage: str, trials: Sequence[FrozenTrial] = (), incumbent: FrozenTrial | None = None
    ) -> PruneMirror:
        """The pruner's view for ``stage``: its own finished trials and the incumbent's, as
        the stage's sampler sees (earlier stages ran under other fixed values: a faster
        learning rate's early losses would prune every trial at the slower one kept)."""
        if stage not in self.mirrors:
            self.mirrors[stage] = self._new_mirror()
        mirror = self.mirrors[stage]
        mirror.sync([t for t in trials if stage_of(t) == stage or t is incumbent])
        return mirror

    def _new_mirror(self) -> PruneMirror:
        return PruneMirror(self.study.study_name, self.study.pruner)

    def train(self, asked: Asked, prunable: bool) -> list[TrialRow]:
        """Train asked trials (alone, or together as one batch, each on the seed slot its
        member names) and tell how they ended; their heartbeat shows other workers that they
        are alive meanwhile."""
        with Heartbeat(storage_of(self.study), [trial_id(t) for t in asked.trials], self.alive):
            rows = self._train(asked, prunable)
        for trial in asked.trials:
            self.pending.pop(trial.number, None)
        return rows

    def interrupt_pending(self) -> None:
        """Record the trials asked and not told yet as interrupted (drawn again on resume):
        an interruption may land between asking and training."""
        for trial in list(self.pending.values()):
            try:
                write_trial(self.study, trial_id(trial), trial_attrs.INTERRUPTED)
                self.study.tell(trial, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # told already
        self.pending.clear()

    def _train(self, asked: Asked, prunable: bool) -> list[TrialRow]:
        stage_name, members, trials, params = asked.stage, asked.members, asked.trials, asked.params
        slots = [int(m.attrs.get(trial_attrs.SLOT, 0)) for m in members]
        # Runs on other seeds and splits must not set the bar for the search's own trials
        # (their curves sit elsewhere): they report to a mirror of their own, never consulted.
        mirror = self.mirror(stage_name) if not any(slots) else self._new_mirror()
        twins = [mirror.start() for _ in trials]
        epochs = self.config.train.epochs
        # Values per epoch go to the study with the trial's other records when it ends (one
        # commit instead of one per epoch), except for Hyperband, which reads them live.
        reported: list[dict[int, float]] = [{} for _ in trials]

        def may_stop(i: int) -> bool:
            # A trial on another schedule than its stage's incumbent (decay or warmup) is
            # meant to look worse early and better late: exactly what early pruning
            # misjudges, so it always runs to the end; so do the baseline and re-runs.
            return (
                prunable
                and members[i].names is not None
                and params[i].schedule == members[i].base.schedule
            )

        def on_epoch(i: int, epoch: int, value: float) -> bool:
            interrupts.check()
            trial, twin = trials[i], twins[i]
            if self.mirror_prunes:
                reported[i][epoch] = self.task.sign * value  # the metric as the study has it
            else:
                trial.report(self.task.sign * value, epoch)
            twin.report(value, epoch)  # the mirror minimises adamtune's own values
            self.observer.epoch_finished(trial.number, epoch, epochs, value)
            if not may_stop(i) or epoch == epochs - 1:  # after the last epoch nothing is saved
                return False
            # Hyperband keeps rung bookkeeping in the study and brackets by trial number, so
            # it is asked on the study itself; the median pruner is asked on the mirror.
            return twin.should_prune() if self.mirror_prunes else trial.should_prune()

        oom = None
        try:
            rung = halving(epochs, may_stop) if prunable and len(params) > 1 else None
            outcomes = self._outcomes(params, on_epoch, slots, rung)
        except KeyboardInterrupt:
            self._fail(trials, twins, reported, trial_attrs.INTERRUPTED, mirror)
            raise
        except Exception as exc:  # a bug in user code, say; recorded, then judged by caller
            log.debug("trials %s raised", [t.number for t in trials], exc_info=True)
            if not out_of_memory(exc):
                attrs = trial_attrs.failed(f"{type(exc).__name__}: {exc}")
                return self._fail(trials, twins, reported, attrs, mirror)
            oom = f"{type(exc).__name__}: {first_line(exc)}"
        if oom is not None:  # out of the handler: its traceback no longer holds the tensors
            release_memory(self.task.device)
            attrs = trial_attrs.failed(oom, oom=True)
            return self._fail(trials, twins, reported, attrs, mirror)
        return [
            self._tell(trial, twin, outcome, values, mirror)
            for trial, twin, outcome, values in zip(trials, twins, outcomes, reported, strict=True)
        ]

    def _tell(
        self,
        trial: optuna.Trial,
        twin: optuna.Trial,
        outcome: TrialOutcome,
        values: dict[int, float],
        mirror: PruneMirror,
    ) -> TrialRow:
        """Record how a trained trial ended and tell the study (and its pruning mirror)."""
        try:
            self._record(trial, outcome, values)
            if outcome.status == "diverged":
                twin.report(math.inf, outcome.epochs)
            if outcome.status == "complete":
                assert outcome.value is not None
                frozen = self.study.tell(trial, self.task.sign * outcome.value)
            else:
                frozen = self.study.tell(trial, state=TrialState.PRUNED)
        except optuna.exceptions.UpdateFinishedTrialError:
            return self._taken_away(trial)
        mirror.finish(twin, trial.number, frozen.state, outcome.value)
        return row_of(frozen)

    def _outcomes(
        self,
        params: list[AdamParams],
        on_epoch: Callable[[int, int, float], bool],
        slots: list[int],
        rung: Callable[[int, dict[int, float]], set[int]] | None,
    ) -> list[TrialOutcome]:
        """Train: together as one batch (even a batch of one: a lone trial costs the same
        either way), or one trial alone."""
        if self.batched:
            return train_batch(self.task, params, on_epoch, slots, rung)
        return [train_trial(self.task, params[0], lambda e, v: on_epoch(0, e, v), slots[0])]

    def _taken_away(self, trial: optuna.Trial) -> TrialRow:
        """A trial another worker failed while this one trained it (its heartbeat looked
        stale: a database that stalled, say): its result is dropped, and it is drawn again."""
        log.warning(
            "trial %d was failed by another worker (no heartbeat seen); its result "
            "is dropped and it runs again",
            trial.number,
        )
        return row_of(storage_of(self.study).get_trial(trial_id(trial)))

    def ask(self, stage_name: str, members: list[Member]) -> Asked:
        """Start one study trial per member (RUNNING, with its parameters and attributes)."""
        joint = is_joint(self.config, stage_name)
        trials, params = [], []
        for m in members:
            self.preset.values = m.coords
            with warnings.catch_warnings():  # we beat for asked trials ourselves
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                trial = self.study.ask()
            self.pending[trial.number] = trial
            # A heartbeat before anything else: a worker that dies from here on leaves a
            # trial that others can tell is dead (``workers.read_live``).
            Heartbeat(storage_of(self.study), [trial_id(trial)]).beat()
            if m.names is None:
                # A member that was not sampled (the baseline, a re-run) records its
                # coordinates but trains its exact values, to the bit.
                record(trial, m.recorded)
                member = m.base
            else:
                drawn = suggest(trial, m.names, self.space, with_zero=joint, base=m.base)
                member = m.base.with_values(drawn)
            started = trial_attrs.asked(
                stage_name,
                member.as_dict(),
                worker_id(),
                len(members),
                self.config.train.maximize,
            )
            attrs = {**started, **m.attrs}  # a re-run names its own stage
            write_trial(self.study, trial_id(trial), attrs)
            self.observer.trial_started(trial.number, attrs[trial_attrs.STAGE], member)
            trials.append(trial)
            params.append(member)
        return Asked(stage_name, members, trials, params)

    def _fail(
        self,
        trials: list[optuna.Trial],
        twins: list[optuna.Trial],
        reported: list[dict[int, float]],
        attrs: dict[str, Any],
        mirror: PruneMirror,
    ) -> list[TrialRow]:
        rows = []
        for trial, twin, values in zip(trials, twins, reported, strict=True):
            try:
                write_trial(self.study, trial_id(trial), attrs, values)
                frozen = self.study.tell(trial, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                rows.append(self._taken_away(trial))
                continue
            mirror.finish(twin, trial.number, TrialState.FAIL, None)
            rows.append(row_of(frozen))
        return rows

    def _record(self, trial: optuna.Trial, outcome: TrialOutcome, values: dict[int, float]) -> None:
        """Write how ``trial`` ended, its curves and its ``values`` per epoch, all as the
        study has them (a maximised metric as itself, not as adamtune compares it)."""
        sign = self.task.sign
        attrs = trial_attrs.ended(
            outcome.status,
            outcome.epochs,
            outcome.seconds,
            [finite_or_none(sign * v) for v in outcome.val_curve],
            [finite_or_none(v) for v in outcome.train_curve],
        )
        values = dict(values)
        if outcome.status == "diverged":
            # Teach the sampler: a diverged trial ranks below every pruned one at its step.
            values[outcome.epochs] = sign * math.inf
        write_trial(self.study, trial_id(trial), attrs, values)
