"""Pruning decided on the in-memory mirror equals pruning decided on the real study."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from adamtune.search.pruning import PruneMirror
from adamtune.storage import open_storage


@pytest.mark.parametrize("pruner", [optuna.pruners.MedianPruner(n_startup_trials=2),
                                    optuna.pruners.MedianPruner(n_warmup_steps=2)])
def test_mirror_decides_like_the_study(storage_url: str, pruner: optuna.pruners.BasePruner) -> None:
    study = optuna.create_study(storage=open_storage(storage_url), pruner=pruner)
    curves = [[1.0, 0.8, 0.6, 0.5], [0.9, 0.7, 0.65, 0.6], [1.2, 1.0, 0.9, 0.85],
              [0.7, 0.5, 0.4, 0.3]]
    for curve in curves[:3]:
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(value, step)
        study.tell(trial, curve[-1])
    mirror = PruneMirror(study.study_name, pruner)
    mirror.sync(study.get_trials())
    for curve in ([2.0, 1.9, 1.8, 1.7], [0.8, 0.6, 0.5, 0.45], curves[3]):
        real, twin = study.ask(), mirror.start()
        decisions = []
        for step, value in enumerate(curve):
            real.report(value, step)
            twin.report(value, step)
            decisions.append((real.should_prune(), twin.should_prune()))
        assert all(a == b for a, b in decisions), decisions
        frozen = study.tell(real, curve[-1])
        mirror.finish(twin, frozen.number, TrialState.COMPLETE, curve[-1])


def test_sqlite_storage_writes_ahead(storage_url: str) -> None:
    storage = open_storage(storage_url)
    with storage.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"
