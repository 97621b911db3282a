"""Training one trial with ``torch.optim.Adam``.

Every trial of a seed starts from the same initial weights and sees the same batch order
(common random numbers), so the difference between two trials is the hyperparameters alone.
With ``repeats`` > 1 the seeds are trained side by side, epoch by epoch, so that the value
reported after each epoch (for pruning) is already the mean over seeds.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.utils.data import DataLoader

from adamtune.errors import first_line
from adamtune.task.build import Task
from adamtune.task.data import Split, TaskData, TensorSplit
from adamtune.train import threads
from adamtune.train.params import AdamParams
from adamtune.train.schedules import make_scheduler

Status = Literal["complete", "pruned", "diverged"]
# Called after each epoch with (epoch index, value so far); returning True stops the trial.
EpochCallback = Callable[[int, float], bool]
VAL_CHUNK = 4096


@dataclass
class TrialOutcome:
    status: Status
    value: float | None  # the objective, when complete
    val_curve: list[float] = field(default_factory=list)  # mean over seeds, per epoch
    train_curve: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.val_curve)


def make_optimizer(model: nn.Module, params: AdamParams) -> torch.optim.Adam:
    """``torch.optim.Adam`` with ``params``. The multi-tensor (foreach) path gives the same
    numbers as the default one to the bit and was ~4% faster per trial on the quickstart's
    CPU task (benchmarks/README.md); ``fused`` is faster still but rounds differently."""
    kwargs = params.torch_kwargs()
    kwargs["betas"] = tuple(kwargs["betas"])
    return torch.optim.Adam(model.parameters(), foreach=True, **kwargs)


def warm_up() -> None:
    """Construct a throwaway optimizer: torch's first one imports ``torch._dynamo`` (~0.8 s on
    a 2-core CPU), which would otherwise count as the first trial's training time."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], foreach=True)


def out_of_memory(exc: BaseException) -> bool:
    """torch ran out of memory: CUDA's own error class; MPS and the CPU allocator raise a
    plain RuntimeError that says so."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def release_memory(device: torch.device) -> None:
    """Give back what a failed trial held: its tensors (once nothing refers to them, such as
    the error's traceback) and the device's cached blocks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def autocast(task: Task) -> contextlib.AbstractContextManager[None]:
    precision = task.settings.config.train.precision
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(task.device.type, dtype=dtype)


def batches(
    split: Split, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches. In-memory data is indexed directly: a DataLoader costs about twice
    the whole step on small models (benchmarks/README.md)."""
    if isinstance(split, TensorSplit):
        order = torch.randperm(len(split), generator=generator).to(split.x.device)
        for start in range(0, len(split), batch_size):
            idx = order[start : start + batch_size]
            yield (
                split.x[idx].to(device, non_blocking=True),
                split.y[idx].to(device, non_blocking=True),
            )
    else:
        loader = DataLoader(split, batch_size=batch_size, shuffle=True, generator=generator)
        for x, y in loader:
            yield x.to(device), y.to(device)


def val_chunks(
    task: Task, data: TaskData, size: int = VAL_CHUNK
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``data``'s validation split in large chunks, on the task's device."""
    val = data.val
    if isinstance(val, TensorSplit):
        for i in range(0, len(val), size):
            yield (
                val.x[i : i + size].to(task.device),
                val.y[i : i + size].to(task.device),
            )
    else:
        for x, y in DataLoader(val, batch_size=size):
            yield x.to(task.device), y.to(task.device)


@torch.no_grad()
def evaluate(task: Task, model: nn.Module, data: TaskData) -> float:
    """``model``'s value on ``data``'s validation split, lower is better: the mean loss, or
    the task's metric (``Task.judged``) over all its outputs."""
    model.eval()
    total, seen = 0.0, 0
    outs, targets = [], []
    for x, y in val_chunks(task, data):
        with autocast(task):
            out = model(x).float()
        if task.metric is not None:
            outs.append(out)
            targets.append(y)
        else:
            total += float(task.loss_fn(out, y)) * len(x)
            seen += len(x)
    if task.metric is not None:
        return task.judged(torch.cat(outs), torch.cat(targets))
    return total / seen


def objective(val_losses: list[float], last: bool) -> float:
    """A trial's value: its lowest val loss, or its last with ``objective: last``."""
    return val_losses[-1] if last else min(val_losses)


class _Run:
    """One seed's model, optimizer and batch-order generator, on one train/val split."""

    def __init__(self, task: Task, seed: int, params: AdamParams, data: TaskData) -> None:
        self.task, self.data = task, data
        self.model = task.new_model(seed)
        self.optimizer = make_optimizer(self.model, params)
        epochs = task.settings.config.train.epochs
        self.scheduler = make_scheduler(self.optimizer, params.schedule, epochs)
        self.generator = torch.Generator().manual_seed(seed)
        fp16 = task.settings.config.train.precision == "fp16"
        self.scaler = torch.amp.GradScaler(task.device.type) if fp16 else None
        # Dropout draws from the global RNG: seed it so a seed's masks are the same every trial.
        torch.manual_seed(seed)
        self.rng_state = torch.get_rng_state()
        self.val_losses: list[float] = []

    def train_epoch(self) -> float:
        """Mean training loss of one epoch; NaN as soon as a batch's loss is not finite."""
        task, model, opt = self.task, self.model, self.optimizer
        batch_size = task.settings.config.data.batch_size
        model.train()
        torch.set_rng_state(self.rng_state)
        total = torch.zeros((), device=task.device)
        seen = 0
        for x, y in batches(self.data.train, batch_size, self.generator, task.device):
            threads.pace()  # per step: a long epoch still reacts to a neighbour within 0.5 s
            with autocast(task):
                loss = task.loss_fn(model(x).float(), y)
            if not torch.isfinite(loss):
                return math.nan
            opt.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(opt)
                self.scaler.update()
            else:
                loss.backward()
                opt.step()
            total += loss.detach() * len(x)
            seen += len(x)
        self.rng_state = torch.get_rng_state()
        if self.scheduler is not None:  # stepped per epoch, as the printed code does
            self.scheduler.step()
        return float(total) / seen

    def validate(self) -> float:
        loss = evaluate(self.task, self.model, self.data)
        self.val_losses.append(loss)
        return loss

    def objective(self) -> float:
        return objective(self.val_losses, self.task.settings.config.train.objective == "last")


def train_trial(
    task: Task, params: AdamParams, on_epoch: EpochCallback | None = None, slot: int = 0
) -> TrialOutcome:
    """Train ``params`` on every run of the task's seed slot ``slot`` (``Task.runs``: its
    seeds on every fold); stop early on divergence or when told."""
    if task.step is not None:
        from adamtune.train.user_step import train_user_step

        return train_user_step(task, params, on_epoch, slot)
    started = time.perf_counter()
    runs = [_Run(task, seed, params, data) for seed, data in task.runs(slot)]
    outcome = TrialOutcome(status="complete", value=None)
    for epoch in range(task.settings.config.train.epochs):
        train_losses = [run.train_epoch() for run in runs]
        if not all(math.isfinite(t) for t in train_losses):
            outcome.status = "diverged"
            break
        val_losses = [run.validate() for run in runs]
        outcome.train_curve.append(sum(train_losses) / len(runs))
        outcome.val_curve.append(sum(val_losses) / len(runs))
        if not all(math.isfinite(v) for v in val_losses):
            outcome.status = "diverged"
            break
        so_far = sum(run.objective() for run in runs) / len(runs)
        if on_epoch is not None and on_epoch(epoch, so_far):
            outcome.status = "pruned"
            break
    if outcome.status == "complete":
        outcome.value = sum(run.objective() for run in runs) / len(runs)
    outcome.seconds = time.perf_counter() - started
    return outcome


def check_one_batch(task: Task) -> None:
    """Train the model on one batch, forward and backward, on the task's device: a model that
    does not fit the data (a wrong input size, outputs the loss cannot take) fails here in one
    line naming ``model.arch``, not on the study's first trial. With your own training
    function (which has its own loss) only the forward pass is checked; a metric scores the
    batch's outputs."""
    model = task.new_model(task.seeds[0])
    generator = torch.Generator().manual_seed(0)
    x, y = next(
        batches(task.data.train, task.settings.config.data.batch_size, generator, task.device)
    )
    try:
        with autocast(task):
            out = model(x)
            loss = task.loss_fn(out.float(), y) if task.step is None else None
        if loss is not None:
            loss.backward()
    except Exception as exc:  # whatever the user's model or the loss raises
        if out_of_memory(exc):
            raise
        raise task.settings.problem(
            "model.arch",
            f"cannot train on this data's first batch ({type(exc).__name__}: {first_line(exc)})",
        ) from None
    if loss is not None and not torch.isfinite(loss.detach()):
        raise task.settings.problem(
            "model.arch", f"the loss of the first batch is {float(loss)} (not finite)"
        )
    if task.metric is not None:
        try:
            value = task.metric(out.detach().float(), y)
        except Exception as exc:  # whatever the user's metric raises
            raise task.settings.problem(
                "train.metric",
                f"cannot score the first batch's outputs ({type(exc).__name__}: {first_line(exc)})",
            ) from None
        if not math.isfinite(value):
            raise task.settings.problem(
                "train.metric", f"the first batch scores {value} (not a finite number)"
            )
