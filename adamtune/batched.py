"""Training K trials together as one vectorised model (``search.batch`` / ``--batch K``).

Small models spend most of a training step in per-operation overhead, not arithmetic
(shared/PERF-NOTES.md). K trials of the same model and seed differ only in Adam's
hyperparameters: they start from the same weights and see the same batches, so their
parameters are stacked as the rows of one [K, P] tensor, the model runs once per batch for all
K (the built-in MLPs through ``stacked_mlp``, any other model under ``torch.func.vmap``) and
``StackedAdam`` updates every row with its own hyperparameters.

Each trial's numbers are those it gets trained alone (``engine.train_trial``) up to the
rounding of batched matrix multiplies: the rows never mix (the summed loss keeps their
gradients apart), a diverged or pruned trial is dropped from the stack at the end of its
epoch and the survivors are re-packed, so a dead row neither poisons nor slows the others.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from adamtune.data import TaskData
from adamtune.engine import TrialOutcome, autocast, batches, objective, out_of_memory, val_chunks
from adamtune.errors import first_line
from adamtune.schedules import lr_sequence
from adamtune.space import ADAM_DEFAULTS, AdamParams
from adamtune.stacked_adam import StackedAdam
from adamtune.stacked_mlp import plan_of, stacked_forward, stored
from adamtune.task import Task

# Called after each epoch with (member index, epoch index, value so far); True stops it.
MemberCallback = Callable[[int, int, float], bool]
# Called once after each epoch with (epoch index, {member index: value so far}) for the members
# still training; returns the members to stop (successive halving inside the batch).
RungCallback = Callable[[int, dict[int, float]], set[int]]


class _Stack:
    """One seed's K copies of the model on one train/val split: weights in the rows of
    ``flat``, Adam over them."""

    def __init__(
        self, task: Task, seed: int, params: Sequence[AdamParams], data: TaskData | None = None
    ) -> None:
        self.task, self.data = task, data or task.data
        model = task.new_model(seed)
        # The module only describes the computation; weights are passed to functional_call.
        self.template = copy.deepcopy(model).to("meta")
        self.layers = plan_of(model)  # the built-in MLPs skip vmap's per-op cost
        trained = [(n, p.detach()) for n, p in model.named_parameters() if p.requires_grad]
        if self.layers is not None:
            trained = [(n, stored(self.layers, n, p)) for n, p in trained]
        self.layout = [(n, p.shape, p.numel()) for n, p in trained]
        # Frozen parameters and buffers are the same for every member: shared, not stacked.
        self.shared: dict[str, torch.Tensor] = {
            n: p.detach() for n, p in model.named_parameters() if not p.requires_grad
        }
        self.shared.update(dict(model.named_buffers()))
        row = torch.cat([p.reshape(-1) for _, p in trained])
        self.flat = row.repeat(len(params), 1)
        self.grad = torch.zeros_like(self.flat)
        self._bind()
        self.optimizer = StackedAdam(self.flat, self.grad, params)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # dropout masks: the same draws as a trial trained alone
        self.rng_state = torch.get_rng_state()
        self.val_losses: list[list[float]] = [[] for _ in params]

    def _bind(self) -> None:
        """Per-parameter leaves that share storage with ``flat``: an update of ``flat`` is an
        update of the model every member runs."""
        self.leaves: dict[str, torch.Tensor] = {}
        offset, k = 0, self.flat.shape[0]
        for name, shape, n in self.layout:
            leaf = self.flat[:, offset : offset + n].view(k, *shape).detach().requires_grad_()
            self.leaves[name] = leaf
            offset += n

    def _backward(self, losses: torch.Tensor) -> None:
        """Gradients of every member into the rows of ``grad``. ``autograd.grad`` hands them
        over as computed; ``backward`` would first copy each into its leaf's strided layout."""
        k = self.flat.shape[0]
        grads = torch.autograd.grad(losses.sum(), list(self.leaves.values()))
        torch.cat([g.reshape(k, -1) for g in grads], dim=1, out=self.grad)

    def keep(self, rows: list[int]) -> None:
        """Drop every row not in ``rows`` (sorted): the trials that stopped."""
        index = torch.tensor(rows, device=self.flat.device)
        self.flat = self.flat[index]
        self.grad = torch.zeros_like(self.flat)
        self._bind()
        self.optimizer.keep(index, self.flat, self.grad)
        self.val_losses = [self.val_losses[r] for r in rows]

    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.layers is not None:
            return stacked_forward(self.layers, self.leaves, x, self.template.training)

        def member(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, {**weights, **self.shared}, (x,))

        # "same": one dropout mask for all members, drawn as a lone trial would draw it.
        out: torch.Tensor = vmap(member, in_dims=(0, None), randomness="same")(self.leaves, x)
        return out

    def _losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's mean loss over the batch, [K]."""
        return stacked_loss(self.task.loss_name, out.float(), y)

    def train_epoch(self) -> list[float]:
        """Each row's mean training loss; NaN for a row whose loss stopped being finite."""
        task = self.task
        self.template.train()
        torch.set_rng_state(self.rng_state)
        k = self.flat.shape[0]
        total = torch.zeros(k, device=task.device)
        bad = torch.zeros(k, dtype=torch.bool, device=task.device)
        seen = 0
        batch_size = task.settings.config.data.batch_size
        for x, y in batches(self.data.train, batch_size, self.generator, task.device):
            with autocast(task):
                losses = self._losses(self._outputs(x), y)
            bad |= ~torch.isfinite(losses.detach())
            self._backward(losses)
            self.optimizer.step()
            total += losses.detach() * len(x)
            seen += len(x)
        self.rng_state = torch.get_rng_state()
        return [
            math.nan if b else t / seen for t, b in zip(total.tolist(), bad.tolist(), strict=True)
        ]

    @torch.no_grad()
    def validate(self) -> list[float]:
        self.template.eval()
        k = self.flat.shape[0]
        totals, seen = [0.0] * k, 0
        for x, y in val_chunks(self.task, self.data):
            with autocast(self.task):
                losses = self._losses(self._outputs(x), y).tolist()
            totals = [t + loss * len(x) for t, loss in zip(totals, losses, strict=True)]
            seen += len(x)
        values = [t / seen for t in totals]
        for history, value in zip(self.val_losses, values, strict=True):
            history.append(value)
        return values


def stacked_loss(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The task's loss for each member of ``out`` [K, B, ...] against the shared targets ``y``,
    written for the stack: the same losses under vmap cost about a quarter of a step."""
    k = out.shape[0]
    if name == "cross_entropy":
        # Rows of [K * B, C], as a lone trial's [B, C]: log-softmax over the last dimension
        # runs the same kernel and rounds the same (over a middle dimension it drifted 1e-4).
        classes = out.shape[-1]
        per_item = F.cross_entropy(out.reshape(-1, classes), y.repeat(k), reduction="none").view(
            k, -1
        )
    else:  # numeric targets, shaped like one member's output (task._numeric)
        target = y.reshape(out.shape[1:]).to(out.dtype).expand_as(out)
        per_item = _NUMERIC[name](out, target, reduction="none")
    return per_item.flatten(1).mean(1)


_NUMERIC: dict[str, Callable[..., torch.Tensor]] = {
    "mse": F.mse_loss,
    "bce": F.binary_cross_entropy_with_logits,
    "l1": F.l1_loss,
}


def train_batch(
    task: Task,
    params: Sequence[AdamParams],
    on_epoch: MemberCallback | None = None,
    slot: int = 0,
    on_rung: RungCallback | None = None,
) -> list[TrialOutcome]:
    """Train every parameter set in ``params`` on every run of the task's seed slot ``slot``
    (``Task.runs``), together.

    Returns one outcome per parameter set, in the order given; ``on_epoch`` is called with the
    member's index in ``params``, ``on_rung`` once per epoch with every live member's value.
    """
    started = time.perf_counter()
    # amsgrad rows first: StackedAdam keeps their running maximum over a slice.
    live = sorted(range(len(params)), key=lambda i: not params[i].amsgrad)
    stacks = [_Stack(task, seed, [params[i] for i in live], data) for seed, data in task.runs(slot)]
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
            outcome = outcomes[i]
            train_losses = [t[row] for t in train]
            if not all(math.isfinite(t) for t in train_losses):
                outcome.status = "diverged"
            else:
                val_losses = [v[row] for v in val]
                outcome.train_curve.append(sum(train_losses) / len(stacks))
                outcome.val_curve.append(sum(val_losses) / len(stacks))
                if not all(math.isfinite(v) for v in val_losses):
                    outcome.status = "diverged"
                else:
                    so_far = _mean_objective(stacks, row, last)
                    if on_epoch is not None and on_epoch(i, epoch, so_far):
                        outcome.status = "pruned"
            if outcome.status != "complete":
                stopped.add(i)
                outcome.seconds = time.perf_counter() - started
        if on_rung is not None:
            values = {
                i: _mean_objective(stacks, row, last)
                for row, i in enumerate(live)
                if i not in stopped
            }
            for i in on_rung(epoch, values) & set(values):
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


def _mean_objective(stacks: list[_Stack], row: int, last: bool) -> float:
    return sum(objective(stack.val_losses[row], last) for stack in stacks) / len(stacks)


def unbatchable(task: Task) -> str | None:
    """Why the task's model cannot be trained in a batch, or None when it can.

    Tried for real on one batch: modules that update state in place during the forward pass
    (BatchNorm's running statistics) or that vmap has no rule for fail here, not mid-search.
    """
    if task.settings.config.train.precision == "fp16":
        return "fp16 gradient scaling skips steps for a whole optimizer, not per trial"
    model = task.new_model(task.seeds[0])
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            return f"{type(module).__name__} keeps running statistics (vmap cannot batch them)"
    try:
        stack = _Stack(task, task.seeds[0], [ADAM_DEFAULTS, ADAM_DEFAULTS])
        x, y = next(
            batches(
                task.data.train,
                task.settings.config.data.batch_size,
                torch.Generator().manual_seed(0),
                task.device,
            )
        )
        with autocast(task):
            stack._backward(stack._losses(stack._outputs(x), y))
    except Exception as exc:  # whatever vmap or the user's module raises
        if out_of_memory(exc):
            return f"two stacked copies ran out of memory ({first_line(exc)})"
        return f"vmap cannot run it ({type(exc).__name__}: {first_line(exc)})"
    return None


# ``batch: auto``. Measured on 2 CPU cores (benchmarks/README.md, bench_engine.py): batching K
# trials pays while the K weight rows stay small; against one at a time, 32 rows of a
# 26k-parameter MLP train 5.3x faster per trial, 32 of 85k 2.7x, 16 of 300k 1.5x, while at
# 1.1M parameters no K beats 1.
_AUTO_MAX = {"cpu": 32, "gpu": 64}
_AUTO_ELEMENTS = {"cpu": 4_000_000, "gpu": 64_000_000}  # K x P kept under this
_AUTO_MIN = 8  # below this many rows the per-op savings no longer pay for the batching
_BUFFERS = 8  # weights, gradients, two moments, amsgrad maximum, scratch: bytes per element x4


def auto_batch(task: Task) -> int:
    """K for ``batch: auto``: as many rows as fit the device's sweet spot and a quarter of its
    free memory, or 1 when that is too few to pay."""
    kind = "cpu" if task.device.type == "cpu" else "gpu"
    k = min(_AUTO_MAX[kind], _AUTO_ELEMENTS[kind] // max(task.n_params, 1))
    per_row = _BUFFERS * 4 * max(task.n_params, 1)
    free = _free_bytes(task.device)
    if free is not None:
        k = min(k, int(0.25 * free) // per_row)
    return k if k >= _AUTO_MIN else 1


# Below this many parameters a CPU trial is per-op overhead, not arithmetic: one thread trains
# it as fast as two (within 10% on the quickstart), and, unlike two, it keeps that speed beside
# another busy process (benchmarks/bench_neighbour.py).
_ONE_THREAD_PARAMS = 1_000_000


def cpu_threads(task: Task) -> int | None:
    """torch's CPU threads for a search of ``task`` when the user chose none: one for a small
    model on the CPU, else None (torch's default, shared out among local workers)."""
    return 1 if task.device.type == "cpu" and task.n_params < _ONE_THREAD_PARAMS else None


def _free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu" and hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            return None
    return None


def batch_size(task: Task, requested: int | str) -> tuple[int, str | None]:
    """The K a search uses for ``requested`` (a number or ``auto``), and a one-line notice
    when batching was asked for but cannot be used."""
    if requested == 1:
        return 1, None
    reason = unbatchable(task)
    if reason is not None:
        return 1, f"trials are trained one at a time: {reason}"
    return (auto_batch(task) if requested == "auto" else int(requested)), None
