"""Pruning decided on the in-memory mirror equals pruning decided on the real study; successive
halving inside a batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
import pytest
from optuna.trial import TrialState

from adamtune.search.pruning import PruneMirror
from adamtune.search.storage import open_storage

if TYPE_CHECKING:
    from adamtune.task.build import Task


@pytest.mark.parametrize(
    "pruner",
    [
        optuna.pruners.MedianPruner(n_startup_trials=2),
        optuna.pruners.MedianPruner(n_warmup_steps=2),
    ],
)
def test_mirror_decides_like_the_study(storage_url: str, pruner: optuna.pruners.BasePruner) -> None:
    study = optuna.create_study(storage=open_storage(storage_url), pruner=pruner)
    curves = [
        [1.0, 0.8, 0.6, 0.5],
        [0.9, 0.7, 0.65, 0.6],
        [1.2, 1.0, 0.9, 0.85],
        [0.7, 0.5, 0.4, 0.3],
    ]
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


def test_halving_stops_the_worst_third_then_the_worst_half_of_what_may_stop() -> None:
    from adamtune.search.pruning import halving, rungs

    assert rungs(20) == {4: 2 / 3, 9: 1 / 2}  # after epochs 5 and 10 of 20
    assert rungs(3) == {}  # too short to judge early
    on_rung = halving(20, may_stop=lambda i: i != 0)  # member 0 (the baseline) never stops
    values = {i: float(i) for i in range(10)}  # member i's value so far: lower is better
    assert on_rung(3, values) == set()  # not a rung
    # 9 may stop: the best ceil(9 * 2/3) = 6 go on, the worst 3 stop; the baseline stays
    assert on_rung(4, values) == {7, 8, 9}
    left = {i: float(i) for i in range(7)}
    assert on_rung(9, left) == {4, 5, 6}  # 6 may stop: the best 3 go on
    assert on_rung(9, {0: 5.0, 1: 1.0, 2: 2.0, 3: 3.0}) == set()  # too few to halve


def test_a_batch_halves_its_members_and_the_survivors_train_to_the_end(
    make_task: Callable[..., Task],
) -> None:
    from adamtune.search.pruning import halving
    from adamtune.train.batched import train_batch
    from adamtune.train.params import AdamParams

    task = make_task(epochs=8)
    params = [AdamParams(lr=lr) for lr in (1e-3, 3e-3, 1e-2, 1e-5, 2e-5, 3e-5, 5e-3, 2e-3)]
    out = train_batch(task, params, None, 0, halving(8, may_stop=lambda i: i != 0))
    stopped = [i for i, o in enumerate(out) if o.status == "pruned"]
    assert out[0].status == "complete" and len(out[0].val_curve) == 8
    assert len(stopped) == 2 + 2  # 7 may stop: 2 after epoch 2, then 2 of the 5 after epoch 4
    assert {3, 4, 5} & set(stopped)  # the slowest lrs are among them
    assert all(len(out[i].val_curve) in (2, 4) for i in stopped)
    assert all(len(o.val_curve) == 8 for i, o in enumerate(out) if i not in stopped)
