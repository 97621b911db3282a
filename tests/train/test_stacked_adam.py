"""The stacked Adam update: each row steps exactly as ``torch.optim.Adam`` would."""

from __future__ import annotations

import pytest
import torch

from adamtune.train.params import ADAM_DEFAULTS, AdamParams
from adamtune.train.stacked_adam import StackedAdam

# amsgrad rows first, as the engine orders them.
ROWS = [
    AdamParams(lr=3e-3, amsgrad=True, weight_decay=1e-2),
    AdamParams(
        lr=1e-2,
        beta1=0.8,
        beta2=0.99,
        eps=1e-6,
        amsgrad=True,
        weight_decay=0.05,
        decoupled_weight_decay=True,
    ),
    ADAM_DEFAULTS,
    AdamParams(lr=0.05, eps=1e-4, weight_decay=0.1, decoupled_weight_decay=True),
    AdamParams(lr=2e-4, beta1=0.5, beta2=0.9999, weight_decay=3e-3),
    AdamParams(lr=1.0, beta1=0.999, beta2=0.9, eps=1e-10),
]


def references(init: torch.Tensor, rows: list[AdamParams], foreach: bool):
    out = []
    for p in rows:
        t = init.clone().requires_grad_()
        kwargs = p.torch_kwargs()
        kwargs["betas"] = tuple(kwargs["betas"])
        out.append((t, torch.optim.Adam([t], foreach=foreach, **kwargs)))
    return out


@pytest.mark.parametrize("foreach", [False, True], ids=["single-tensor", "foreach"])
@pytest.mark.parametrize("steps", [1, 40])
def test_every_row_matches_torch_adam_bit_for_bit(foreach: bool, steps: int) -> None:
    # Tolerance: none. Given the same gradients, the arithmetic is torch's, op for op.
    torch.manual_seed(0)
    init = torch.randn(500)
    flat, grad = init.repeat(len(ROWS), 1), torch.zeros(len(ROWS), 500)
    adam = StackedAdam(flat, grad, ROWS)
    refs = references(init, ROWS, foreach)
    for step in range(steps):
        g = torch.randn(len(ROWS), 500) * (1 + step % 4)
        grad.copy_(g)
        adam.step()
        for k, (t, opt) in enumerate(refs):
            t.grad = g[k].clone()
            opt.step()
    for k, (t, opt) in enumerate(refs):
        assert torch.equal(flat[k], t.detach()), ROWS[k]
        state = opt.state[t]
        assert torch.equal(adam.exp_avg[k], state["exp_avg"])
        assert torch.equal(adam.exp_avg_sq[k], state["exp_avg_sq"])


def test_dropping_rows_keeps_the_survivors_state() -> None:
    torch.manual_seed(1)
    init = torch.randn(64)
    flat, grad = init.repeat(len(ROWS), 1), torch.zeros(len(ROWS), 64)
    adam = StackedAdam(flat, grad, ROWS)
    refs = references(init, ROWS, foreach=True)
    keep = [1, 2, 5]  # one amsgrad row, two plain ones
    for step in range(20):
        if step == 7:
            flat, grad = flat[keep], torch.zeros(len(keep), 64)
            adam.keep(torch.tensor(keep), flat, grad)
            refs = [refs[k] for k in keep]
        g = torch.randn(len(refs), 64)
        grad.copy_(g)
        adam.step()
        for k, (t, opt) in enumerate(refs):
            t.grad = g[k].clone()
            opt.step()
    assert adam.n_amsgrad == 1
    for k, (t, _) in enumerate(refs):
        assert torch.equal(flat[k], t.detach())


def test_amsgrad_rows_must_come_first() -> None:
    rows = [ADAM_DEFAULTS, AdamParams(amsgrad=True)]
    with pytest.raises(ValueError, match="amsgrad must come first"):
        StackedAdam(torch.zeros(2, 3), torch.zeros(2, 3), rows)


def test_a_nan_row_leaves_the_others_untouched() -> None:
    flat, grad = torch.zeros(3, 8), torch.ones(3, 8)
    adam = StackedAdam(flat, grad, [ADAM_DEFAULTS] * 3)
    grad[1] = float("nan")
    adam.step()
    assert torch.isnan(flat[1]).all()
    assert torch.isfinite(flat[[0, 2]]).all() and torch.equal(flat[0], flat[2])
