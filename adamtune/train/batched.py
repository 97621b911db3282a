"""Training K trials together as one vectorised model (``search.batch`` / ``--batch K``).

Small models spend most of a training step in per-operation overhead, not arithmetic
(benchmarks/README.md). K trials of the same model and seed differ only in Adam's
hyperparameters: they start from the same weights and see the same batches, so their
parameters are stacked as the rows of one [K, P] tensor, the model runs once per batch for all
K (the built-in MLPs through ``stacked_mlp``, any other model under ``torch.func.vmap``) and
``StackedAdam`` updates every row with its own hyperparameters; the stacked model is
``stack.Stack``.

Each trial's numbers are those it gets trained alone (``engine.train_trial``) up to the
rounding of batched matrix multiplies: the rows never mix (the summed loss keeps their
gradients apart), a diverged or pruned trial is dropped from the stack at the end of its
epoch and the survivors are re-packed, so a dead row neither poisons nor slows the others.

Re-runs on several seed slots (the final confirmation) train in one stack too: the rows fall
in groups, one per slot, each with its slot's initial weights, batch order and split, and
each step feeds every row its own group's batch. That needs splits of one size in memory and
a model that draws no random numbers while training (no dropout); otherwise the slots train
one after another.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from adamtune.config.schema import is_import_path
from adamtune.errors import first_line
from adamtune.task.build import Task
from adamtune.task.data import TaskData, TensorSplit
from adamtune.train.engine import (
    TrialOutcome,
    batches,
    objective,
    out_of_memory,
)
from adamtune.train.params import ADAM_DEFAULTS, AdamParams
from adamtune.train.schedules import lr_sequence
from adamtune.train.stack import Stack

# Called after each epoch with (member index, epoch index, value so far); True stops it.
MemberCallback = Callable[[int, int, float], bool]
# Called once after each epoch with (epoch index, {member index: value so far}) for the members
# still training; returns the members to stop (successive halving inside the batch).
RungCallback = Callable[[int, dict[int, float]], set[int]]


def train_batch(
    task: Task,
    params: Sequence[AdamParams],
    on_epoch: MemberCallback | None = None,
    slot: int | Sequence[int] = 0,
    on_rung: RungCallback | None = None,
) -> list[TrialOutcome]:
    """Train every parameter set in ``params`` on every run of the task's seed slot ``slot``
    (``Task.runs``), together; ``slot`` may also give each parameter set its own slot.

    Returns one outcome per parameter set, in the order given; ``on_epoch`` is called with the
    member's index in ``params``, ``on_rung`` once per epoch with every live member's value.
    """
    slots = [slot] * len(params) if isinstance(slot, int) else list(slot)
    distinct = sorted(set(slots))
    runs = [task.runs(s) for s in distinct]
    if len(distinct) > 1 and not _one_stack(task, runs):
        return _slot_by_slot(task, params, on_epoch, slots, on_rung)
    started = time.perf_counter()
    # amsgrad rows first: StackedAdam keeps their running maximum over a slice.
    live = sorted(range(len(params)), key=lambda i: not params[i].amsgrad)
    groups = [distinct.index(slots[i]) for i in live]
    # One stack per run of a slot (its seeds and folds), holding that run of every slot.
    stacks = [
        Stack(task, [r[j] for r in runs], [params[i] for i in live], groups)
        for j in range(len(runs[0]))
    ]
    outcomes = [TrialOutcome(status="complete", value=None) for _ in params]
    last = task.settings.config.train.objective == "last"
    epochs = task.settings.config.train.epochs
    # Each member's lr per epoch, from torch's own schedulers (the floats a lone trial uses).
    scheduled = any(p.schedule.decays or p.schedule.warmup for p in params)
    rates = [lr_sequence(p.schedule, p.lr, epochs) for p in params] if scheduled else []
    for epoch in range(epochs):
        if scheduled:
            for stack in stacks:
                stack.optimizer.set_lrs([rates[i][epoch] for i in live])
        train = [stack.train_epoch() for stack in stacks]
        val = [stack.validate() for stack in stacks]
        stopped: set[int] = set()
        for row, i in enumerate(live):
            losses = ([t[row] for t in train], [v[row] for v in val])
            if not _record_epoch(outcomes[i], losses, len(stacks)):
                outcomes[i].status = "diverged"
            elif on_epoch is not None and on_epoch(i, epoch, _mean_objective(stacks, row, last)):
                outcomes[i].status = "pruned"
            if outcomes[i].status != "complete":
                stopped.add(i)
                outcomes[i].seconds = time.perf_counter() - started
        for i in _halved(on_rung, epoch, stacks, live, stopped, last):
            outcomes[i].status = "pruned"
            outcomes[i].seconds = time.perf_counter() - started
            stopped.add(i)
        if stopped:
            rows = [row for row, i in enumerate(live) if i not in stopped]
            live = [live[row] for row in rows]
            if not live:
                break
            for stack in stacks:
                stack.keep(rows)
    for row, i in enumerate(live):
        outcomes[i].value = _mean_objective(stacks, row, last)
        outcomes[i].seconds = time.perf_counter() - started
    return outcomes


def _one_stack(task: Task, runs: list[list[tuple[int, TaskData]]]) -> bool:
    """Whether the runs of several slots can train as groups of one stack: splits of one size,
    in memory, and a built-in model that draws no random numbers while it trains (a group's
    dropout masks would have to come from its own seed)."""
    if is_import_path(task.settings.config.model.arch) or task.settings.config.model.dropout > 0:
        return False
    sizes = set()
    for _, data in (pair for run in runs for pair in run):
        if not (isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)):
            return False
        sizes.add((len(data.train), len(data.val)))
    return len(sizes) == 1


def _slot_by_slot(
    task: Task,
    params: Sequence[AdamParams],
    on_epoch: MemberCallback | None,
    slots: list[int],
    on_rung: RungCallback | None,
) -> list[TrialOutcome]:
    """``train_batch`` of members on several slots, one slot after another."""
    outcomes: list[TrialOutcome | None] = [None] * len(params)
    for slot in sorted(set(slots)):
        index = [i for i, s in enumerate(slots) if s == slot]

        def member_epoch(j: int, epoch: int, value: float, index: list[int] = index) -> bool:
            return on_epoch is not None and on_epoch(index[j], epoch, value)

        def rung(epoch: int, values: dict[int, float], index: list[int] = index) -> set[int]:
            assert on_rung is not None
            stop = on_rung(epoch, {index[j]: v for j, v in values.items()})
            return {j for j, i in enumerate(index) if i in stop}

        sub = [params[i] for i in index]
        done = train_batch(task, sub, member_epoch, slot, rung if on_rung else None)
        for i, outcome in zip(index, done, strict=True):
            outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def _halved(
    on_rung: RungCallback | None,
    epoch: int,
    stacks: list[Stack],
    live: list[int],
    stopped: set[int],
    last: bool,
) -> set[int]:
    """The members successive halving stops after ``epoch`` (none without ``on_rung``)."""
    if on_rung is None:
        return set()
    values = {
        i: _mean_objective(stacks, row, last) for row, i in enumerate(live) if i not in stopped
    }
    return on_rung(epoch, values) & set(values)


def _record_epoch(
    outcome: TrialOutcome, losses: tuple[list[float], list[float]], runs: int
) -> bool:
    """Add one epoch's train and val losses (their mean over the runs) to ``outcome``'s
    curves; False when a loss is not finite (the val curve then is not extended)."""
    train_losses, val_losses = losses
    if not all(math.isfinite(t) for t in train_losses):
        return False
    outcome.train_curve.append(sum(train_losses) / runs)
    outcome.val_curve.append(sum(val_losses) / runs)
    return all(math.isfinite(v) for v in val_losses)


def _mean_objective(stacks: list[Stack], row: int, last: bool) -> float:
    return sum(objective(stack.val_losses[row], last) for stack in stacks) / len(stacks)


def unbatchable(task: Task) -> str | None:
    """Why the task's model cannot be trained in a batch, or None when it can.

    Tried for real on one batch: modules that update state in place during the forward pass
    (BatchNorm's running statistics) or that vmap has no rule for fail here, not mid-search.
    """
    if task.step is not None:
        return f"train.step {task.settings.config.train.step} is your own training function"
    if task.settings.config.train.precision == "fp16":
        return "fp16 gradient scaling skips steps for a whole optimizer, not per trial"
    model = task.new_model(task.seeds[0])
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            return f"{type(module).__name__} keeps running statistics (vmap cannot batch them)"
    try:
        stack = Stack(task, [(task.seeds[0], task.data)], [ADAM_DEFAULTS, ADAM_DEFAULTS])
        x, y = next(
            batches(
                task.data.train,
                task.settings.config.data.batch_size,
                torch.Generator().manual_seed(0),
                task.device,
            )
        )
        stack.gradients(x, y)
    except Exception as exc:  # whatever vmap or the user's module raises
        if out_of_memory(exc):
            return f"two stacked copies ran out of memory ({first_line(exc)})"
        return f"vmap cannot run it ({type(exc).__name__}: {first_line(exc)})"
    return None
