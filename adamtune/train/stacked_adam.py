"""Adam for K trials at once: each trial's parameters are one row of a [K, P] tensor.

Every hyperparameter is a per-row column, so one update serves K trials with different lr,
betas, eps, weight decay (coupled or decoupled) and amsgrad. The arithmetic follows
``torch.optim.Adam``'s single-tensor path operation for operation (``_single_tensor_adam``
in ``torch/optim/adam.py``): bias corrections in float64 and cast once, ``lerp_`` for the first
moment, ``mul_`` then ``addcmul_`` for the second, ``addcdiv_`` for the step. A scalar
``value=`` of those ops becomes a column multiplied in first, in the order the kernels
multiply, so with identical gradients a row ends bit for bit where ``torch.optim.Adam`` would.

A whole-tensor update makes about ten passes over [K, P]; that is cheap next to the per-op
overhead it removes for the small models batching is for (benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from adamtune.train.params import AdamParams


def _column(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """Python floats (float64) rounded once to ``like``'s dtype, as a [K, 1] column."""
    return torch.tensor(list(values), dtype=torch.float64).to(like.dtype).to(like.device)[:, None]


class StackedAdam:
    """Adam over the rows of ``flat`` (float32, [K, P]); ``grad`` holds the gradients.

    Rows whose trial uses amsgrad must come first (the engine orders them so): the running
    maximum then touches a slice, not every row through a mask.
    """

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor, params: Sequence[AdamParams]):
        if len(params) != flat.shape[0]:
            raise ValueError(f"{len(params)} parameter sets for {flat.shape[0]} rows")
        ams = [p.amsgrad for p in params]
        if ams != sorted(ams, reverse=True):
            raise ValueError("rows with amsgrad must come first")
        self.flat, self.grad = flat, grad
        self.params = list(params)
        self.steps = 0
        self.n_amsgrad = sum(ams)
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.max_exp_avg_sq = torch.zeros_like(flat[: self.n_amsgrad])
        self._scratch = torch.empty_like(flat)
        self._denom = torch.empty_like(flat)
        self._columns()

    def _columns(self) -> None:
        ps, like = self.params, self.flat
        self.one_minus_beta1 = _column([1 - p.beta1 for p in ps], like)
        self.beta2 = _column([p.beta2 for p in ps], like)
        self.one_minus_beta2 = _column([1 - p.beta2 for p in ps], like)
        self.eps = _column([p.eps for p in ps], like)
        coupled = [0.0 if p.decoupled_weight_decay else p.weight_decay for p in ps]
        decoupled = [p.weight_decay if p.decoupled_weight_decay else 0.0 for p in ps]
        self.coupled = _column(coupled, like) if any(coupled) else None
        self.decay = (
            _column([1 - p.lr * wd for p, wd in zip(ps, decoupled, strict=True)], like)
            if any(decoupled)
            else None
        )

    def set_lrs(self, lrs: Sequence[float]) -> None:
        """Each row's learning rate from now on (a schedule's rate for the next epoch)."""
        self.params = [replace(p, lr=lr) for p, lr in zip(self.params, lrs, strict=True)]
        self._columns()

    def keep(self, rows: torch.Tensor, flat: torch.Tensor, grad: torch.Tensor) -> None:
        """Keep only ``rows`` (a sorted index tensor) of every buffer: the engine's re-pack.
        ``flat`` and ``grad`` are the engine's re-packed weights and gradients."""
        self.flat, self.grad = flat, grad
        kept = rows.tolist()
        self.exp_avg = self.exp_avg[rows]
        self.exp_avg_sq = self.exp_avg_sq[rows]
        ams_rows = [r for r in kept if r < self.n_amsgrad]
        self.max_exp_avg_sq = self.max_exp_avg_sq[ams_rows]
        self.n_amsgrad = len(ams_rows)
        self.params = [self.params[r] for r in kept]
        self._scratch = torch.empty_like(self.exp_avg)
        self._denom = torch.empty_like(self.exp_avg)
        self._columns()

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        step, ps = self.steps, self.params
        param, grad, exp_avg, exp_avg_sq = self.flat, self.grad, self.exp_avg, self.exp_avg_sq
        if self.coupled is not None:  # grad.add(param, alpha=weight_decay)
            grad = torch.addcmul(grad, param, self.coupled)
        if self.decay is not None:  # param.mul_(1 - lr * weight_decay)
            param.mul_(self.decay)
        exp_avg.lerp_(grad, self.one_minus_beta1)
        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2): the kernel multiplies
        # value * grad first, then by grad.
        exp_avg_sq.mul_(self.beta2)
        scaled = torch.mul(grad, self.one_minus_beta2, out=self._scratch)
        exp_avg_sq.addcmul_(scaled, grad)
        # Bias corrections in float64 per row, as Python floats in torch's code.
        bc2_sqrt = _column([(1 - p.beta2**step) ** 0.5 for p in ps], param)
        neg_step = _column([-(p.lr / (1 - p.beta1**step)) for p in ps], param)
        denom, a = self._denom, self.n_amsgrad
        if a:
            torch.maximum(self.max_exp_avg_sq, exp_avg_sq[:a], out=self.max_exp_avg_sq)
            torch.sqrt(self.max_exp_avg_sq, out=denom[:a])
        torch.sqrt(exp_avg_sq[a:], out=denom[a:])
        denom.div_(bc2_sqrt).add_(self.eps)
        # param.addcdiv_(exp_avg, denom, value=-step_size): value * exp_avg first, then / denom.
        scaled = torch.mul(exp_avg, neg_step, out=self._scratch)
        param.addcdiv_(scaled, denom)
