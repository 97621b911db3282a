"""The records a trial gets (``search.trial_attrs``), read back by ``rows`` and ``study``."""

from __future__ import annotations

import optuna

from adamtune.search import trial_attrs
from adamtune.search.rows import row_of
from adamtune.search.study import stage_of, status_of
from adamtune.train.params import AdamParams


def test_a_rerun_reads_back_as_the_row_it_measures_again() -> None:
    params = AdamParams(lr=3e-3)
    attrs = {
        **trial_attrs.asked("lr", params.as_dict(), "host:1", 6),
        **trial_attrs.rerun("confirm", 2, 7, "confirm", None),
        **trial_attrs.ended("complete", 3, 1.23456, [0.5, 0.4, 0.45], [0.6, 0.5, 0.4]),
    }
    trial = optuna.trial.create_trial(value=0.4, user_attrs=attrs)
    row = row_of(trial)
    assert (row.stage, row.slot, row.confirms, row.epochs) == ("confirm", 2, 7, 3)
    assert row.params == params and row.seconds == 1.2346 and row.state == "complete"
    assert trial_attrs.is_rerun(trial.user_attrs) and attrs[trial_attrs.BATCH] == 6


def test_how_a_trial_ended_is_its_status() -> None:
    diverged = trial_attrs.ended("diverged", 1, 0.1, [None], [None])
    assert diverged[trial_attrs.REASON] == "diverged"
    oom = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs=trial_attrs.failed("CUDA", oom=True)
    )
    assert status_of(oom) == "oom" and stage_of(oom) == "?"
    died = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)
    retried = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={trial_attrs.RETRY_OF: 3}
    )
    assert (status_of(died), status_of(retried)) == ("killed", "failed")
    alone = trial_attrs.asked("lr", {}, "host:1", 1)
    assert trial_attrs.BATCH not in alone
