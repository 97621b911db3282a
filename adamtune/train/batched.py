"""Training K trials together as one vectorised model (``search.batch`` / ``--batch K``).

Small models spend most of a training step in per-operation overhead, not arithmetic
(benchmarks/README.md). K trials of the same model and seed differ only in Adam's
hyperparameters: they start from the same weights and see the same batches, so their
parameters are stacked as the rows of one [K, P] tensor, the model runs once per batch for all
K (the built-in MLPs through ``stacked_mlp``, any other model under ``torch.func.vmap``) and
``StackedAdam`` updates every row with its own hyperparameters.

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

import copy
import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from adamtune.config.schema import is_import_path
from adamtune.errors import first_line
from adamtune.task.build import Task
from adamtune.task.data import TaskData, TensorSplit
from adamtune.train import threads
from adamtune.train.engine import (
    VAL_CHUNK,
    TrialOutcome,
    autocast,
    batches,
    objective,
    out_of_memory,
    val_chunks,
)
from adamtune.train.params import ADAM_DEFAULTS, AdamParams
from adamtune.train.schedules import lr_sequence
from adamtune.train.stacked_adam import StackedAdam
from adamtune.train.stacked_mlp import plan_of, stacked_forward, stacked_loss, stored

# Called after each epoch with (member index, epoch index, value so far); True stops it.
MemberCallback = Callable[[int, int, float], bool]
# Called once after each epoch with (epoch index, {member index: value so far}) for the members
# still training; returns the members to stop (successive halving inside the batch).
RungCallback = Callable[[int, dict[int, float]], set[int]]


_GROUPED_ELEMENTS = 8_000_000  # inputs copied per validation chunk of a grouped stack (32 MB)


class _Stack:
    """K copies of the model in the rows of ``flat``, Adam over them, trained in groups: each
    group is one (seed, train/val split) run with its own initial weights and batch order;
    ``groups[row]`` names a row's. One group is the common case (a round on one seed slot)."""

    def __init__(
        self,
        task: Task,
        runs: Sequence[tuple[int, TaskData]],
        params: Sequence[AdamParams],
        groups: Sequence[int] | None = None,
    ) -> None:
        self.task, self.runs = task, list(runs)
        self.group = torch.tensor(list(groups) if groups is not None else [0] * len(params))
        models = [task.new_model(seed) for seed, _ in self.runs]
        model = models[0]
        # The module only describes the computation; weights are passed to functional_call.
        self.template = copy.deepcopy(model).to("meta")
        self.layers = plan_of(model)  # the built-in MLPs skip vmap's per-op cost
        self.layout = [(n, p.shape, p.numel()) for n, p in self._trained(model)]
        # Frozen parameters and buffers are the same for every member: shared, not stacked.
        self.shared: dict[str, torch.Tensor] = {
            n: p.detach() for n, p in model.named_parameters() if not p.requires_grad
        }
        self.shared.update(dict(model.named_buffers()))
        starts = [torch.cat([p.reshape(-1) for _, p in self._trained(m)]) for m in models]
        if len(starts) == 1:
            self.flat = starts[0].repeat(len(params), 1)
        else:
            self.flat = torch.stack(starts)[self.group.to(starts[0].device)]
        self.grad = torch.zeros_like(self.flat)
        self._bind()
        self.optimizer = StackedAdam(self.flat, self.grad, params)
        self.generators = [torch.Generator().manual_seed(seed) for seed, _ in self.runs]
        torch.manual_seed(self.runs[0][0])  # dropout masks: the draws of a trial trained alone
        self.rng_state = torch.get_rng_state()
        self.val_losses: list[list[float]] = [[] for _ in params]

    def _trained(self, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
        trained = [(n, p.detach()) for n, p in model.named_parameters() if p.requires_grad]
        if self.layers is not None:
            trained = [(n, stored(self.layers, n, p)) for n, p in trained]
        return trained

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
        self.group = self.group[torch.tensor(rows)]
        self.grad = torch.zeros_like(self.flat)
        self._bind()
        self.optimizer.keep(index, self.flat, self.grad)
        self.val_losses = [self.val_losses[r] for r in rows]

    def _outputs(self, x: torch.Tensor, per_row: bool = False) -> torch.Tensor:
        """The members' outputs for ``x``: one batch all see, or ([K, B, ...], ``per_row``)
        each row's own."""
        if self.layers is not None:
            return stacked_forward(self.layers, self.leaves, x, self.template.training, per_row)

        def member(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, {**weights, **self.shared}, (x,))

        # "same": one dropout mask for all members, drawn as a lone trial would draw it.
        dims = (0, 0 if per_row else None)
        out: torch.Tensor = vmap(member, in_dims=dims, randomness="same")(self.leaves, x)
        return out

    def _losses(self, out: torch.Tensor, y: torch.Tensor, per_row: bool = False) -> torch.Tensor:
        """Each member's mean loss over the batch, [K]."""
        return stacked_loss(self.task.loss_name, out.float(), y, per_row)

    def _feed(
        self, parts: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """One step's input from each group's batch: the batch itself for one group, else
        every row's own group's, [K, B, ...]."""
        if len(parts) == 1:
            return parts[0][0], parts[0][1], False
        index = self.group.to(parts[0][0].device)
        x = torch.stack([x for x, _ in parts])[index]
        y = torch.stack([y for _, y in parts])[index]
        return x, y, True

    def _val_rows(self) -> int:
        """Validation rows per chunk: with several groups every row gets its own copy of the
        inputs, [K, rows, ...], so the chunk shrinks to keep that copy small."""
        if len(self.runs) == 1:
            return VAL_CHUNK
        val = self.runs[0][1].val
        per_row = val.x[0].numel() if isinstance(val, TensorSplit) and len(val) else 1
        return max(64, min(VAL_CHUNK, _GROUPED_ELEMENTS // (self.flat.shape[0] * per_row)))

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
        feeds = [
            batches(data.train, batch_size, generator, task.device)
            for (_, data), generator in zip(self.runs, self.generators, strict=True)
        ]
        for parts in zip(*feeds, strict=True):
            x, y, per_row = self._feed(parts)
            with autocast(task):
                losses = self._losses(self._outputs(x, per_row), y, per_row)
            bad |= ~torch.isfinite(losses.detach())
            self._backward(losses)
            self.optimizer.step()
            total += losses.detach() * len(parts[0][0])
            seen += len(parts[0][0])
        self.rng_state = torch.get_rng_state()
        return [
            math.nan if b else t / seen for t, b in zip(total.tolist(), bad.tolist(), strict=True)
        ]

    @torch.no_grad()
    def validate(self) -> list[float]:
        """Each row's value on its group's validation split (lower is better)."""
        self.template.eval()
        k = self.flat.shape[0]
        totals, seen = [0.0] * k, 0
        outs: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        chunks = [val_chunks(self.task, data, self._val_rows()) for _, data in self.runs]
        for parts in zip(*chunks, strict=True):
            x, y, per_row = self._feed(parts)
            with autocast(self.task):
                out = self._outputs(x, per_row).float()
            if self.task.metric is not None:  # judged on all outputs at once, row by row
                outs.append(out)
                targets.append(y if per_row else y.expand(k, *y.shape))
                continue
            losses = self._losses(out, y, per_row).tolist()
            totals = [t + loss * len(parts[0][0]) for t, loss in zip(totals, losses, strict=True)]
            seen += len(parts[0][0])
        if self.task.metric is not None:
            out, y = torch.cat(outs, dim=1), torch.cat(targets, dim=1)
            values = [self.task.judged(out[r], y[r]) for r in range(k)]
        else:
            values = [t / seen for t in totals]
        for history, value in zip(self.val_losses, values, strict=True):
            history.append(value)
        return values


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
        _Stack(task, [r[j] for r in runs], [params[i] for i in live], groups)
        for j in range(len(runs[0]))
    ]
    outcomes = [TrialOutcome(status="complete", value=None) for _ in params]
    last = task.settings.config.train.objective == "last"
    epochs = task.settings.config.train.epochs
    # Each member's lr per epoch, from torch's own schedulers (the floats a lone trial uses).
    scheduled = any(p.schedule.decays or p.schedule.warmup for p in params)
    rates = [lr_sequence(p.schedule, p.lr, epochs) for p in params] if scheduled else []
    for epoch in range(epochs):
        threads.pace()
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
    stacks: list[_Stack],
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


def _mean_objective(stacks: list[_Stack], row: int, last: bool) -> float:
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
        stack = _Stack(task, [(task.seeds[0], task.data)], [ADAM_DEFAULTS, ADAM_DEFAULTS])
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
