"""Training one trial: exactly a plain torch loop, reproducible, and stopped on divergence."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING

import pytest
import torch

from adamtune.task.build import Task
from adamtune.task.data import TensorSplit
from adamtune.task.models import build_model
from adamtune.train.engine import make_optimizer, train_trial
from adamtune.train.params import ADAM_DEFAULTS, AdamParams

if TYPE_CHECKING:
    from conftest import MakeTask, WriteModule


TUNED = AdamParams(
    lr=1e-2,
    beta1=0.8,
    beta2=0.99,
    eps=1e-6,
    weight_decay=1e-2,
    amsgrad=True,
    decoupled_weight_decay=True,
)


def hand_written_loop(task: Task, params: AdamParams, seed: int) -> list[float]:
    """What a practitioner would write by hand, without adamtune's engine."""
    settings = task.settings
    epochs = settings.config.train.epochs
    batch_size = settings.config.data.batch_size
    train, val = task.data.train, task.data.val
    assert isinstance(train, TensorSplit) and isinstance(val, TensorSplit)

    torch.manual_seed(seed)
    model = build_model(settings, task.data)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(
        model.parameters(),
        lr=params.lr,
        betas=(params.beta1, params.beta2),
        eps=params.eps,
        weight_decay=params.weight_decay,
        amsgrad=params.amsgrad,
        decoupled_weight_decay=params.decoupled_weight_decay,
    )
    g = torch.Generator().manual_seed(seed)
    n = len(train)
    curve = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = task.loss_fn(model(train.x[idx]), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            mean = float(task.loss_fn(model(val.x), val.y))
        curve.append(mean * len(val) / len(val))  # the engine weights chunks by their rows
    return curve


@pytest.mark.parametrize("params", [ADAM_DEFAULTS, TUNED], ids=["defaults", "tuned"])
def test_train_trial_is_exactly_a_plain_torch_loop(make_task: MakeTask, params: AdamParams) -> None:
    task = make_task()
    outcome = train_trial(task, params)
    assert outcome.status == "complete"
    assert outcome.epochs == 3
    assert outcome.val_curve == hand_written_loop(task, params, seed=0)
    assert outcome.value == min(outcome.val_curve)


def test_plain_loop_equality_holds_with_dropout_and_another_seed(make_task: MakeTask) -> None:
    task = make_task(seed=3, model="  arch: mlp\n  hidden: [16]\n  dropout: 0.3\n")
    outcome = train_trial(task, TUNED)
    assert outcome.val_curve == hand_written_loop(task, TUNED, seed=3)


def test_make_optimizer_passes_every_parameter(make_task: MakeTask) -> None:
    opt = make_optimizer(make_task().new_model(0), TUNED)
    group = opt.param_groups[0]
    assert group["betas"] == (0.8, 0.99)
    assert (
        group["lr"],
        group["eps"],
        group["weight_decay"],
        group["amsgrad"],
        group["decoupled_weight_decay"],
    ) == (1e-2, 1e-6, 1e-2, True, True)


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_trial_of_a_seed_starts_from_the_same_weights(make_task: MakeTask) -> None:
    task = make_task()
    first = task.new_model(0)
    torch.manual_seed(12345)  # whatever ran in between
    torch.rand(100)
    assert state_equal(first, task.new_model(0))
    assert not state_equal(first, task.new_model(1))


def test_cached_init_even_when_the_model_uses_another_rng(
    make_task: MakeTask, user_module: WriteModule
) -> None:
    module = user_module("""
        import numpy as np
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self, in_features, out_features):
                super().__init__()
                self.lin = nn.Linear(in_features, out_features)
                with torch.no_grad():  # numpy's RNG: torch.manual_seed does not reach it
                    self.lin.weight.copy_(torch.as_tensor(
                        np.random.normal(size=(out_features, in_features))))

            def forward(self, x):
                return self.lin(x)
    """)
    task = make_task(model=f"  arch: {module}:Net\n")
    assert state_equal(task.new_model(0), task.new_model(0))


def test_same_params_give_identical_outcomes(make_task: MakeTask) -> None:
    task = make_task(model="  arch: mlp\n  hidden: [16]\n  dropout: 0.2\n")
    a = train_trial(task, TUNED)
    train_trial(task, ADAM_DEFAULTS)  # another trial in between changes nothing
    b = train_trial(task, TUNED)
    assert (a.status, a.value, a.val_curve, a.train_curve) == (
        b.status,
        b.value,
        b.val_curve,
        b.train_curve,
    )
    c = train_trial(make_task(model="  arch: mlp\n  hidden: [16]\n  dropout: 0.2\n"), TUNED)
    assert c.val_curve == a.val_curve  # a fresh task (a rerun) reproduces it too


def count_loss_calls(task: Task) -> list[int]:
    calls = [0]
    inner = task.loss_fn

    def counted(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return inner(out, y)

    task.loss_fn = counted
    return calls


@pytest.mark.parametrize("source", ["diabetes", "synthetic-regression"])
def test_huge_lr_diverges_and_stops_at_once(make_task: MakeTask, source: str) -> None:
    task = make_task(source=source, epochs=5)
    calls = count_loss_calls(task)
    outcome = train_trial(task, AdamParams(lr=1e10))
    assert outcome.status == "diverged"
    assert outcome.value is None
    assert outcome.epochs < 5
    batches = math.ceil(task.data.n_train / 32)
    assert calls[0] < batches * 5  # neither trained on nor validated after the blow-up


def test_non_finite_batch_stops_the_trial_at_that_batch(
    make_task: MakeTask, user_module: WriteModule
) -> None:
    module = user_module("""
        import torch
        from torch.utils.data import TensorDataset

        def make():
            g = torch.Generator().manual_seed(0)
            x = torch.randn(50, 3, generator=g)
            y = x.sum(1, keepdim=True)
            x[7, 0] = float("nan")
            return TensorDataset(x[:40], y[:40]), TensorDataset(x[40:], y[40:])
    """)
    # A Dataset: tensors with a NaN are refused when loaded, Datasets are read as they are.
    task = make_task(source=f"{module}:make", batch=8, epochs=3)
    calls = count_loss_calls(task)
    outcome = train_trial(task, ADAM_DEFAULTS)
    # Row 7 lands in the batch that the seed-0 shuffle puts it in; nothing runs after it.
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    bad_batch = int((order == 7).nonzero()) // 8
    assert outcome.status == "diverged" and outcome.value is None
    assert outcome.val_curve == [] and outcome.train_curve == []
    assert calls[0] == bad_batch + 1


def test_non_finite_validation_loss_is_divergence(
    make_task: MakeTask, user_module: WriteModule
) -> None:
    module = user_module("""
        import torch

        def make():
            g = torch.Generator().manual_seed(0)
            x = torch.randn(50, 3, generator=g)
            y = x.sum(1, keepdim=True)
            y[45] = 1e30  # its squared error overflows float32
            return (x[:40], y[:40]), (x[40:], y[40:])
    """)
    task = make_task(source=f"{module}:make", batch=8, epochs=3, data="  standardize: false\n")
    outcome = train_trial(task, ADAM_DEFAULTS)
    assert outcome.status == "diverged" and outcome.value is None
    assert outcome.epochs == 1 and math.isinf(outcome.val_curve[0])


def test_objective_best_and_last(make_task: MakeTask) -> None:
    rough = AdamParams(lr=1.0)  # a curve that goes down, then up
    best = train_trial(make_task(epochs=4), rough)
    last = train_trial(make_task(epochs=4, train="  objective: last\n"), rough)
    assert best.val_curve == last.val_curve
    assert min(best.val_curve) < best.val_curve[-1]
    assert best.value == min(best.val_curve)
    assert last.value == last.val_curve[-1]


def test_repeats_average_the_seeds(make_task: MakeTask) -> None:
    both = make_task(train="  repeats: 2\n")
    assert both.seeds == [0, 1]
    outcome = train_trial(both, TUNED)

    def alone(seed: int) -> Task:
        config = both.settings.config.model_copy(
            update={
                "seed": seed,
                "train": both.settings.config.train.model_copy(update={"repeats": 1}),
            }
        )
        settings = both.settings.model_copy(update={"config": config})
        return dataclasses.replace(both, settings=settings, _init_states={})  # same data split

    one, two = train_trial(alone(0), TUNED), train_trial(alone(1), TUNED)
    assert one.value != two.value
    assert outcome.value == (one.value + two.value) / 2  # type: ignore[operator]
    assert outcome.val_curve == [
        (a + b) / 2 for a, b in zip(one.val_curve, two.val_curve, strict=True)
    ]


def test_on_epoch_can_prune(make_task: MakeTask) -> None:
    task = make_task(epochs=3)
    seen: list[tuple[int, float]] = []

    def on_epoch(epoch: int, value: float) -> bool:
        seen.append((epoch, value))
        return epoch == 1

    outcome = train_trial(task, ADAM_DEFAULTS, on_epoch)
    assert outcome.status == "pruned" and outcome.value is None
    assert outcome.epochs == 2
    full = train_trial(task, ADAM_DEFAULTS)
    assert outcome.val_curve == full.val_curve[:2]
    # The value reported is the objective so far (best val loss up to that epoch).
    assert seen == [(0, min(full.val_curve[:1])), (1, min(full.val_curve[:2]))]


def test_on_epoch_returning_false_lets_the_trial_finish(make_task: MakeTask) -> None:
    outcome = train_trial(make_task(), ADAM_DEFAULTS, lambda epoch, value: False)
    assert outcome.status == "complete" and outcome.epochs == 3
    assert outcome.seconds > 0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_runs_on_cpu(make_task: MakeTask, precision: str) -> None:
    task = make_task(train=f"  precision: {precision}\n")
    outcome = train_trial(task, ADAM_DEFAULTS)
    assert outcome.status == "complete"
    assert outcome.epochs == 3
    assert all(math.isfinite(v) for v in outcome.val_curve + outcome.train_curve)
    assert outcome.value is not None and math.isfinite(outcome.value)
    full = train_trial(make_task(), ADAM_DEFAULTS)
    assert outcome.value == pytest.approx(full.value, rel=0.05)
    assert train_trial(task, ADAM_DEFAULTS).val_curve == outcome.val_curve


def test_dataset_backed_task_trains_through_a_dataloader(
    make_task: MakeTask, user_module: WriteModule
) -> None:
    module = user_module("""
        import torch
        from torch.utils.data import TensorDataset

        def make(n=100):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, 4, generator=g)
            y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
            return TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:])
    """)
    task = make_task(source=f"{module}:make", batch=16, epochs=3)
    assert not task.data.in_memory
    a = train_trial(task, AdamParams(lr=1e-2))
    b = train_trial(task, AdamParams(lr=1e-2))
    assert a.status == "complete" and a.epochs == 3
    assert a.val_curve == b.val_curve and a.train_curve == b.train_curve
    assert a.val_curve[-1] < a.val_curve[0]  # it learns


def test_dataset_backed_regression_matches_target_shape(
    make_task: MakeTask, user_module: WriteModule
) -> None:
    module = user_module("""
        import torch
        from torch.utils.data import TensorDataset

        def make(n=80):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, 4, generator=g)
            y = x.sum(1)
            return TensorDataset(x[:60], y[:60]), TensorDataset(x[60:], y[60:])
    """)
    task = make_task(source=f"{module}:make", batch=16, epochs=2)
    assert task.loss_name == "mse" and task.data.out_features == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Using a target size ... different"
        outcome = train_trial(task, AdamParams(lr=1e-2))
    assert outcome.status == "complete"


def test_with_folds_a_trial_is_the_mean_over_folds(make_task: MakeTask) -> None:
    from adamtune.task.data import TaskData
    from adamtune.train.batched import train_batch

    task = make_task(data="  folds: 3\n")
    assert len(task.folds) == 3 and len(task.runs()) == 3
    outcome = train_trial(task, ADAM_DEFAULTS)
    alone = []
    for fold in task.folds:
        one: Task = dataclasses.replace(task, data=fold, folds=[fold])
        alone.append(train_trial(one, ADAM_DEFAULTS).value)
    assert outcome.value == pytest.approx(sum(alone) / 3, rel=1e-6)
    assert train_batch(task, [ADAM_DEFAULTS])[0].value == pytest.approx(outcome.value, rel=1e-5)
    assert isinstance(task.splits_for(1)[0], TaskData)
    assert not torch.equal(task.splits_for(1)[0].val.x, task.folds[0].val.x)  # type: ignore[union-attr]
