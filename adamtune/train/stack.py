"""K copies of one model stacked as the rows of a [K, P] tensor, trained by ``StackedAdam``.

The trials of a batch start from the same weights and see the same batches; only Adam's
hyperparameters differ, so the model runs once per batch for all rows: the built-in MLPs
through ``stacked_mlp``, any other model under ``torch.func.vmap``. The rows may fall in groups,
one per (seed, train/val split) run, each with its own initial weights, batch order and split;
every step then feeds each row its own group's batch. ``batched.train_batch`` drives stacks.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from adamtune.task.build import Task
from adamtune.task.data import TaskData, TensorSplit
from adamtune.train import threads
from adamtune.train.engine import VAL_CHUNK, autocast, batches, val_chunks
from adamtune.train.params import AdamParams
from adamtune.train.stacked_adam import StackedAdam
from adamtune.train.stacked_mlp import plan_of, stacked_forward, stacked_loss, stored

_GROUPED_ELEMENTS = 8_000_000  # inputs copied per validation chunk of a grouped stack (32 MB)


class Stack:
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
            threads.pace()  # per step: a long epoch still reacts to a neighbour within 0.5 s
            x, y, per_row = self._feed(parts)
            losses = self.gradients(x, y, per_row)
            bad |= ~torch.isfinite(losses.detach())
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

    def gradients(self, x: torch.Tensor, y: torch.Tensor, per_row: bool = False) -> torch.Tensor:
        """One step's gradients for the batch ``x``, ``y`` into ``grad``, with no update; each
        row's loss, [K]. A training step, and what ``batched.unbatchable`` tries first."""
        with autocast(self.task):
            losses = self._losses(self._outputs(x, per_row), y, per_row)
        self._backward(losses)
        return losses
