"""Pruning decisions made in memory, and successive halving inside a batch.

Optuna's pruners read every finished trial of the study on each ``should_prune`` call. On an
SQLite or PostgreSQL storage that is a full read of the trials table per epoch, which cost
about a sixth of the quickstart's wall time. A pruner only needs the finished trials'
intermediate values, so they are mirrored into an in-memory study once, kept up to date as
trials finish, and the pruner is asked there. The search keeps one mirror per stage, holding
that stage's trials and the incumbent's (``trial_runs.TrialRunner.mirror``), so a trial is pruned
against trials run under the same fixed values. Hyperband is not asked here: it keeps its
rung bookkeeping in the study's trials and assigns brackets by trial number, which a mirror
would not reproduce on resume.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from adamtune.search.rows import loss_of, losses_of
from adamtune.search.samplers import in_memory_study

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class PruneMirror:
    """The finished trials of a study, in memory, with the study's pruner."""

    def __init__(self, name: str, pruner: optuna.pruners.BasePruner) -> None:
        self.study = in_memory_study(study_name=name, pruner=pruner)
        self._seen: set[int] = set()

    def sync(self, trials: list[FrozenTrial]) -> None:
        """Add the finished trials (of any worker) not mirrored yet."""
        for t in trials:
            if t.state in _FINISHED and t.number not in self._seen:
                self._seen.add(t.number)
                self.study.add_trial(
                    optuna.trial.create_trial(
                        state=t.state,
                        value=loss_of(t),
                        intermediate_values=losses_of(t),
                        system_attrs=dict(t.system_attrs),
                    )
                )

    def start(self) -> optuna.Trial:
        """A running twin of the real trial, to report to and ask."""
        return self.study.ask()

    def finish(
        self, twin: optuna.Trial, number: int, state: TrialState, value: float | None
    ) -> None:
        self._seen.add(number)
        if state == TrialState.COMPLETE:
            self.study.tell(twin, value)
        else:
            self.study.tell(twin, state=state)


# Successive halving inside a batch: every member trains to a rung, the best go on. At a
# quarter of the epochs the worst third of the members that may stop stop, at half the
# epochs the worst half of those left: a batch then costs about half its epochs' worth of
# trials. Early losses of good and bad learning rates cross over, so no rung comes sooner.
_RUNGS = ((4, 2 / 3), (2, 1 / 2))  # (epochs divided by, fraction kept)
_MIN_MEMBERS = 4  # fewer members than this at a rung: all go on


def rungs(epochs: int) -> dict[int, float]:
    """The epoch index after which each rung judges, and the fraction of members it keeps."""
    return {epochs // d - 1: keep for d, keep in _RUNGS if epochs // d >= 2}


def halving(
    epochs: int, may_stop: Callable[[int], bool]
) -> Callable[[int, dict[int, float]], set[int]]:
    """A rung callback for ``batched.train_batch``: which members stop after an epoch, ranked
    by their value so far among the members that may stop (the baseline, re-runs and trials on
    another schedule than their incumbent's never do)."""
    plan = rungs(epochs)

    def on_rung(epoch: int, values: dict[int, float]) -> set[int]:
        keep = plan.get(epoch)
        ranked = sorted((v, i) for i, v in values.items() if may_stop(i))
        if keep is None or len(ranked) < _MIN_MEMBERS:
            return set()
        return {i for _, i in ranked[math.ceil(len(ranked) * keep) :]}

    return on_rung
