"""Training one trial with the user's own function (``train.step``).

adamtune builds what the trial needs (the model with its seed's initial weights, the Adam
optimizer with the trial's hyperparameters, the lr scheduler if the trial has one, batches in
the seed's order) and hands it over as a ``TrainContext``; the function trains as it likes
(augmentation, gradient clipping, its own loss) and calls ``ctx.report(epoch, value)`` once per
epoch. ``report`` is where adamtune prunes, stops a diverged trial and notices Ctrl-C: it
raises ``StopTrial``, which the function lets pass.

Such a function cannot be stacked with others (``train.batched``): its trials train one at a
time, on one seed and one split each.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from adamtune.task.build import LossFn, Task
from adamtune.task.data import TaskData
from adamtune.train import threads
from adamtune.train.engine import (
    EpochCallback,
    Status,
    TrialOutcome,
    batches,
    evaluate,
    make_optimizer,
    objective,
    val_chunks,
)
from adamtune.train.params import AdamParams
from adamtune.train.schedules import make_scheduler


class StopTrial(BaseException):  # noqa: N818 (named for what the function should do)
    """Raised by ``TrainContext.report`` when the trial must end now (pruned, or its value
    is not finite): let it pass out of your function. Like ``KeyboardInterrupt`` it is not an
    ``Exception``, so an ``except Exception`` in your loop does not swallow it; and even
    caught, the trial ends there (adamtune records the stop either way)."""


class Batches:
    """A loader over one split: each pass yields ``(x, y)`` batches on the trial's device, as
    the engine takes them (``engine.batches``, ``engine.val_chunks``): the training split
    reshuffles every pass in the seed's own order (the same for every trial of the seed), the
    validation split keeps its order."""

    def __init__(
        self, passes: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]], count: int
    ) -> None:
        self._passes, self._count = passes, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._passes()


@dataclass
class TrainContext:
    """Everything one trial of your ``train.step`` function gets.

    Train ``model`` with ``optimizer`` for ``epochs`` epochs; after each, call
    ``report(epoch, value)`` with the metric the study is judged on (``evaluate()`` computes
    the configured one: the validation loss, accuracy or your metric function). Step
    ``scheduler`` once per epoch when it is not None.
    """

    model: nn.Module
    optimizer: torch.optim.Adam
    scheduler: Any  # torch.optim.lr_scheduler.LRScheduler | None
    train_loader: Batches
    val_loader: Batches
    device: torch.device
    epochs: int
    seed: int
    slot: int  # 0: the search's own seed and split; > 0: a noise or confirmation re-run
    params: dict[str, Any]  # the trial's torch.optim.Adam keyword arguments
    loss_fn: LossFn  # the config's train.loss, for convenience
    task: Task = field(repr=False)
    data: TaskData = field(repr=False)
    on_epoch: EpochCallback | None = field(default=None, repr=False)
    values: list[float] = field(default_factory=list, repr=False)  # lower is better
    train_losses: list[float] = field(default_factory=list, repr=False)
    stopped: Status | None = field(default=None, repr=False)  # pruned | diverged

    def evaluate(self) -> float:
        """The configured metric (``train.metric``) of ``model`` on the validation split, in
        its own direction (an accuracy as an accuracy). Leaves the model in eval mode."""
        return self.task.sign * evaluate(self.task, self.model, self.data)

    def report(self, epoch: int, value: float, train_loss: float | None = None) -> None:
        """The metric after epoch ``epoch`` (0, 1, 2, ...); raises ``StopTrial`` when the
        trial ends here. ``train_loss``, if given, is drawn in the report's curves."""
        if self.stopped is not None:
            raise StopTrial(self.stopped)
        if epoch != len(self.values):
            raise ValueError(
                f"report(epoch, value): expected epoch {len(self.values)} next (got {epoch})"
            )
        if epoch >= self.epochs:
            raise ValueError(
                f"report(epoch, value): epoch {epoch} is past train.epochs ({self.epochs}: "
                f"epochs 0 to {self.epochs - 1})"
            )
        value = float(value)
        if not math.isfinite(value):
            self.stopped = "diverged"
            raise StopTrial(f"value {value} is not finite")
        threads.pace()  # between epochs: the function's next one trains on what is free
        self.values.append(self.task.sign * value)
        if train_loss is not None:
            self.train_losses.append(float(train_loss))
        last = self.task.settings.config.train.objective == "last"
        if self.on_epoch is not None and self.on_epoch(epoch, objective(self.values, last)):
            self.stopped = "pruned"
            raise StopTrial("pruned")


def train_user_step(
    task: Task, params: AdamParams, on_epoch: EpochCallback | None = None, slot: int = 0
) -> TrialOutcome:
    """Train ``params`` with the task's ``train.step`` function on seed slot ``slot``."""
    assert task.step is not None
    started = time.perf_counter()
    ctx = context(task, params, slot, on_epoch)
    name = task.settings.config.train.step
    try:
        task.step(ctx)
    except StopTrial:
        pass
    except SystemExit as exc:  # would end the whole search and leave the trial running
        raise RuntimeError(f"{name} called sys.exit({exc.code!r})") from None
    if ctx.stopped is None and not ctx.values:
        raise RuntimeError(
            f"{name} returned without calling ctx.report(epoch, value): adamtune has "
            "nothing to judge the trial on"
        )
    if ctx.scheduler is not None and len(ctx.values) > 1 and ctx.scheduler.last_epoch == 0:
        raise RuntimeError(
            f"{name} never stepped ctx.scheduler: call ctx.scheduler.step() once per epoch "
            f"when it is not None (this trial's lr schedule: {params.schedule.describe()})"
        )
    outcome = TrialOutcome(status=ctx.stopped or "complete", value=None)
    outcome.val_curve = list(ctx.values)
    outcome.train_curve = list(ctx.train_losses)
    if outcome.status == "complete":
        outcome.value = objective(ctx.values, task.settings.config.train.objective == "last")
    outcome.seconds = time.perf_counter() - started
    return outcome


def context(
    task: Task, params: AdamParams, slot: int = 0, on_epoch: EpochCallback | None = None
) -> TrainContext:
    """The context of one trial of ``params`` on slot ``slot``'s (one) seed and split."""
    [(seed, data)] = task.runs(slot)
    cfg = task.settings.config
    model = task.new_model(seed)
    optimizer = make_optimizer(model, params)
    # Whatever the function draws (augmentation, dropout) comes from the seed: every trial of
    # a seed sees the same draws, as every trial sees the same initial weights.
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    batch_size = cfg.data.batch_size
    generator = torch.Generator().manual_seed(seed)  # the seed's batch order, pass by pass
    return TrainContext(
        model=model,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, params.schedule, cfg.train.epochs),
        train_loader=Batches(
            lambda: batches(data.train, batch_size, generator, task.device),
            math.ceil(len(data.train) / batch_size),  # type: ignore[arg-type]
        ),
        val_loader=Batches(
            lambda: val_chunks(task, data, batch_size),
            math.ceil(len(data.val) / batch_size),  # type: ignore[arg-type]
        ),
        device=task.device,
        epochs=cfg.train.epochs,
        seed=seed,
        slot=slot,
        params=params.torch_kwargs() | {"betas": (params.beta1, params.beta2)},
        loss_fn=task.loss_fn,
        task=task,
        data=data,
        on_epoch=on_epoch,
    )
