"""LR schedules: what torch's schedulers do with them, in training, batched, and as code."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
import torch

from adamtune.train.batched import train_batch
from adamtune.train.engine import train_trial
from adamtune.train.params import AdamParams
from adamtune.train.schedules import (
    NO_SCHEDULE,
    Schedule,
    lr_sequence,
    make_scheduler,
    scheduler_code,
)

if TYPE_CHECKING:
    from conftest import MakeTask

KINDS = [Schedule("exponential", 0.01), Schedule("cosine", 0.01), Schedule("step", 0.1)]


@pytest.mark.parametrize("schedule", KINDS, ids=lambda s: s.kind)
def test_a_decay_runs_from_the_peak_to_its_end_fraction(schedule: Schedule) -> None:
    rates = lr_sequence(schedule, 0.02, 20)
    assert len(rates) == 20 and rates[0] == 0.02
    assert rates[-1] == pytest.approx(0.02 * schedule.end, rel=1e-6)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(rates, rates[1:], strict=False))
    if schedule.kind == "step":  # drops every third of the run
        assert len(set(rates)) == 4 and rates[5] == 0.02 and rates[6] < 0.02


def test_a_warmup_climbs_linearly_to_the_peak_then_decays() -> None:
    rates = lr_sequence(Schedule("cosine", 0.01, warmup=0.1), 0.02, 20)
    assert rates[:3] == pytest.approx([0.02 / 3, 0.02 * 2 / 3, 0.02])  # 2 warmup epochs
    assert rates[-1] == pytest.approx(0.0002)
    flat = lr_sequence(Schedule("none", warmup=0.1), 0.02, 20)
    assert flat[2:] == pytest.approx([0.02] * 18) and flat[0] < flat[1] < flat[2]
    assert lr_sequence(NO_SCHEDULE, 0.02, 5) == [0.02] * 5


def test_training_uses_the_schedulers_rates_epoch_by_epoch() -> None:
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = make_scheduler(optimizer, Schedule("exponential", 0.1, 0.1), 10)
    assert scheduler is not None
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == lr_sequence(Schedule("exponential", 0.1, 0.1), 0.05, 10)
    assert make_scheduler(optimizer, NO_SCHEDULE, 10) is None


@pytest.mark.parametrize(
    "schedule", [*KINDS, Schedule("cosine", 0.001, 0.1), Schedule("none", 1.0, 0.1)], ids=str
)
def test_the_printed_code_builds_the_same_schedule(schedule: Schedule) -> None:
    lines = scheduler_code(schedule, 0.02, 20)
    assert lines[0].startswith(f"# {schedule.describe()}")
    model = torch.nn.Linear(3, 1)
    namespace = {"torch": torch, "optimizer": torch.optim.Adam(model.parameters(), lr=0.02)}
    exec("\n".join(lines), namespace)  # noqa: S102 - the code best --format torch prints
    optimizer, scheduler = namespace["optimizer"], namespace["scheduler"]
    seen = []
    for _ in range(20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == lr_sequence(schedule, 0.02, 20)
    assert scheduler_code(NO_SCHEDULE, 0.02, 20) == []


@pytest.mark.slow
def test_a_scheduled_trial_differs_from_a_constant_one_and_batches_alike(
    make_task: MakeTask,
) -> None:
    task = make_task(source="digits", epochs=5, model="  arch: mlp\n  hidden: [32]\n")
    members = [
        AdamParams(lr=0.01),
        AdamParams(lr=0.01, schedule=Schedule("cosine", 0.01)),
        AdamParams(lr=0.003, amsgrad=True, schedule=Schedule("step", 0.1, 0.1)),
        AdamParams(
            lr=0.003,
            weight_decay=0.01,
            decoupled_weight_decay=True,
            schedule=Schedule("exponential", 0.05, 0.1),
        ),
    ]
    alone = [train_trial(task, p) for p in members]
    assert alone[0].val_curve[0] == alone[1].val_curve[0]  # the same first epoch at the peak
    assert alone[0].val_curve[-1] != alone[1].val_curve[-1]  # then the rate decays
    batched = train_batch(task, members)
    for a, b in zip(alone, batched, strict=True):
        assert b.status == a.status == "complete"
        assert b.value == pytest.approx(a.value, rel=1e-5)
        for x, y in zip(a.val_curve, b.val_curve, strict=True):
            assert math.isclose(x, y, rel_tol=1e-5)
