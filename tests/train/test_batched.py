"""Training K trials as one batch: each trial ends where it would alone."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from adamtune.train.batched import train_batch, unbatchable
from adamtune.train.engine import TrialOutcome, train_trial
from adamtune.train.params import ADAM_DEFAULTS, AdamParams
from adamtune.train.sizing import auto_batch, batch_size

if TYPE_CHECKING:
    from conftest import MakeTask, WriteModule

REL = 1e-5  # the issue asks 1e-4; batched matmuls round differently, ~1e-7 in practice

MIXED = [
    ADAM_DEFAULTS,
    AdamParams(lr=3e-3, amsgrad=True),
    AdamParams(lr=1e-2, beta1=0.8, beta2=0.99, weight_decay=1e-2),  # coupled decay
    AdamParams(lr=5e-3, eps=1e-6, weight_decay=0.05, decoupled_weight_decay=True, amsgrad=True),
    AdamParams(lr=2e-4, beta1=0.95, beta2=0.9999),
    AdamParams(lr=1e10),  # diverges within the first epoch
]


def assert_same(alone: TrialOutcome, batched: TrialOutcome) -> None:
    assert batched.status == alone.status
    assert batched.epochs == alone.epochs
    for a, b in zip(
        alone.val_curve + alone.train_curve, batched.val_curve + batched.train_curve, strict=True
    ):
        assert b == pytest.approx(a, rel=REL)
    if alone.value is None:
        assert batched.value is None
    else:
        assert batched.value == pytest.approx(alone.value, rel=REL)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["digits", "diabetes"])
def test_each_trial_of_a_batch_matches_the_trial_trained_alone(
    make_task: MakeTask, source: str
) -> None:
    task = make_task(source=source, epochs=4, model="  arch: mlp\n  hidden: [32, 32]\n")
    alone = [train_trial(task, p) for p in MIXED]
    assert alone[0].status == "complete"
    if source == "diabetes":  # cross entropy on digits saturates rather than overflowing
        assert alone[-1].status == "diverged"
    batched = train_batch(task, MIXED)
    for a, b in zip(alone[:-1], batched[:-1], strict=True):
        assert_same(a, b)
    if source == "diabetes":
        assert_same(alone[-1], batched[-1])
    else:  # lr=1e10 on digits runs on at losses near 1e32: chaos, rounding-sized steps apart
        assert (batched[-1].status, batched[-1].epochs) == (alone[-1].status, alone[-1].epochs)


def test_repeats_and_dropout_match_too(make_task: MakeTask) -> None:
    task = make_task(
        epochs=3, model="  arch: mlp\n  hidden: [16]\n  dropout: 0.3\n", train="  repeats: 2\n"
    )
    params = MIXED[:4]
    for a, b in zip([train_trial(task, p) for p in params], train_batch(task, params), strict=True):
        assert_same(a, b)


def test_a_pruned_member_stops_and_the_others_run_on_unchanged(make_task: MakeTask) -> None:
    task = make_task(epochs=5)
    params = MIXED[:5]
    calls: list[tuple[int, int]] = []

    def prune_member_2_after_epoch_1(i: int, epoch: int, value: float) -> bool:
        calls.append((i, epoch))
        return i == 2 and epoch == 1

    batched = train_batch(task, params, prune_member_2_after_epoch_1)
    assert batched[2].status == "pruned" and batched[2].epochs == 2 and batched[2].value is None
    assert (2, 2) not in calls and (0, 4) in calls
    for i, p in enumerate(params):
        if i != 2:
            assert_same(train_trial(task, p), batched[i])


def test_values_reported_per_epoch_are_the_objective_so_far(make_task: MakeTask) -> None:
    task = make_task(epochs=4)
    seen: dict[int, list[float]] = {}
    outcomes = train_batch(task, MIXED[:3], lambda i, e, v: bool(seen.setdefault(i, []).append(v)))
    for i, outcome in enumerate(outcomes):
        running_min = [min(outcome.val_curve[: e + 1]) for e in range(4)]
        assert seen[i] == running_min


def test_a_plain_mlp_can_be_batched_and_auto_picks_k_from_its_size(make_task: MakeTask) -> None:
    small = make_task(source="digits", model="  arch: mlp\n  hidden: [128, 128]\n")
    assert unbatchable(small) is None
    assert auto_batch(small) == 32
    assert batch_size(small, "auto") == (32, None)
    assert batch_size(small, 5) == (5, None)
    wide = make_task(source="digits", model="  arch: mlp\n  hidden: [1024, 1024]\n")
    assert auto_batch(wide) == 1  # ~1.1M parameters: one at a time is as fast


def test_batchnorm_with_running_stats_falls_back_with_a_reason(
    make_task: MakeTask, user_module: WriteModule
) -> None:
    mod = user_module(
        """
        from torch import nn
        def net(in_features, out_features):
            return nn.Sequential(nn.Linear(in_features, 8), nn.BatchNorm1d(8), nn.ReLU(),
                                 nn.Linear(8, out_features))
        """
    )
    task = make_task(model=f"  arch: {mod}:net\n")
    k, note = batch_size(task, 8)
    assert k == 1
    assert note is not None and "BatchNorm1d keeps running statistics" in note


def test_a_module_vmap_rejects_falls_back_with_a_reason(
    make_task: MakeTask, user_module: WriteModule
) -> None:
    mod = user_module(
        """
        import torch
        from torch import nn
        class Net(nn.Module):
            def __init__(self, in_features, out_features):
                super().__init__()
                self.fc = nn.Linear(in_features, out_features)
            def forward(self, x):
                out = self.fc(x)
                if out.sum().item() > -1e30:  # data-dependent Python control flow
                    return out
                return -out
        """
    )
    task = make_task(model=f"  arch: {mod}:Net\n")
    k, note = batch_size(task, "auto")
    assert k == 1 and note is not None and note.startswith("trials are trained one at a time")


def test_fp16_is_trained_one_at_a_time(make_task: MakeTask) -> None:
    task = make_task(train="  precision: fp16\n")
    assert batch_size(task, 4)[0] == 1


def test_bf16_batches_and_stays_close(make_task: MakeTask) -> None:
    task = make_task(train="  precision: bf16\n", epochs=2)
    alone, batched = train_trial(task, MIXED[1]), train_batch(task, MIXED[:3])[1]
    assert batched.status == alone.status == "complete"
    # bf16 keeps 8 bits of mantissa: batched rounding shows at that precision.
    assert batched.value == pytest.approx(alone.value, rel=2e-2)
    assert all(math.isfinite(v) for v in batched.val_curve)


def test_a_model_of_its_own_goes_through_vmap_and_matches(
    make_task: MakeTask, user_module: WriteModule
) -> None:
    mod = user_module(
        """
        import torch
        from torch import nn
        class Residual(nn.Module):
            def __init__(self, in_features, out_features):
                super().__init__()
                self.inp = nn.Linear(in_features, 16)
                self.block = nn.Sequential(nn.Linear(16, 16), nn.Tanh())
                self.out = nn.Linear(16, out_features)
            def forward(self, x):
                h = torch.relu(self.inp(x))
                return self.out(h + self.block(h))
        """
    )
    task = make_task(model=f"  arch: {mod}:Residual\n")
    for a, b in zip(
        [train_trial(task, p) for p in MIXED[:4]], train_batch(task, MIXED[:4]), strict=True
    ):
        assert_same(a, b)


def test_the_small_cnn_batches_through_vmap(make_task: MakeTask) -> None:
    task = make_task(
        source="digits", epochs=2, model="  arch: cnn\n  channels: [4]\n  hidden: [16]\n"
    )
    assert unbatchable(task) is None
    for a, b in zip(
        [train_trial(task, p) for p in MIXED[:3]], train_batch(task, MIXED[:3]), strict=True
    ):
        assert_same(a, b)


@pytest.mark.parametrize("loss", ["mse", "l1", "bce"])
def test_stacked_losses_are_the_task_loss_per_member(make_task: MakeTask, loss: str) -> None:
    import torch

    from adamtune.train.stacked_mlp import stacked_loss

    source = "breast_cancer" if loss == "bce" else "diabetes"
    task = make_task(source=source, train=f"  loss: {loss}\n")
    split = task.data.train
    y = split.y[:32]  # type: ignore[union-attr]
    out = torch.randn(3, 32, 1)
    expected = torch.stack([task.loss_fn(out[i], y) for i in range(3)])
    assert torch.allclose(stacked_loss(task.loss_name, out, y), expected, rtol=1e-6)


@pytest.mark.slow
def test_twenty_epochs_of_a_sensitive_trial_stay_close(make_task: MakeTask) -> None:
    # A realistic batch over the full 20 epochs of the benchmark task (bench_engine.py's first
    # eight parameter sets): rounding differences must not grow.
    task = make_task(
        source="digits", epochs=20, batch=64, model="  arch: mlp\n  hidden: [128, 128]\n"
    )
    batch = [
        AdamParams(
            lr=10 ** (-4 + 2 * i / 31),
            beta1=0.8 + 0.15 * ((i * 7) % 32) / 32,
            beta2=0.99 + 0.009 * ((i * 3) % 32) / 32,
            weight_decay=1e-4 * (i % 3),
            decoupled_weight_decay=i % 2 == 0,
            amsgrad=i % 4 == 0,
        )
        for i in range(8)
    ]
    assert_same(train_trial(task, batch[7]), train_batch(task, batch)[7])


@pytest.mark.parametrize("target", ["(x[:, 0] > 0).long()", "x.sum(1)"], ids=["class", "regr"])
def test_dataset_backed_data_batches_through_a_dataloader(
    make_task: MakeTask, user_module: WriteModule, target: str
) -> None:
    module = user_module(f"""
        import torch
        from torch.utils.data import TensorDataset

        def make(n=100):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, 4, generator=g)
            y = {target}
            return TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:])
    """)
    task = make_task(source=f"{module}:make", batch=16, epochs=3)
    assert not task.data.in_memory
    for a, b in zip(
        [train_trial(task, p) for p in MIXED[:3]], train_batch(task, MIXED[:3]), strict=True
    ):
        assert_same(a, b)


def test_a_small_model_on_cpu_trains_with_one_thread(make_task: MakeTask) -> None:
    from adamtune.train.sizing import cpu_threads

    assert cpu_threads(make_task()) == 1  # per-op overhead, not arithmetic: one is as fast
    big = make_task(model="  arch: mlp\n  hidden: [1024, 1024]\n")
    assert big.n_params > 1_000_000 and cpu_threads(big) is None  # torch's own choice


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "model"),
    [
        ("digits", "  arch: mlp\n  hidden: [32, 32]\n"),
        ("diabetes", "  arch: mlp\n  hidden: [16]\n"),
        ("digits", "  arch: cnn\n  channels: [4]\n  hidden: [16]\n"),
    ],
)
def test_members_on_several_seed_slots_train_in_one_stack_as_they_would_alone(
    make_task: MakeTask, source: str, model: str
) -> None:
    # The final confirmation's re-runs: each slot brings its own split, initial weights and
    # batch order; trained as groups of one stack, each member ends where it would alone.
    from adamtune.train import batched

    task = make_task(source=source, epochs=3, model=model, train="  repeats: 2\n")
    # (MIXED[3] on the CNN drifts 2e-5 from a lone trial in any batch: left out, as above.)
    params = [MIXED[1], MIXED[0], MIXED[2], MIXED[1], MIXED[2]]
    slots = [1, 2, 2, 3, 1]
    runs = [task.runs(s) for s in sorted(set(slots))]
    assert batched._one_stack(task, runs)
    together = train_batch(task, params, slot=slots)
    for p, s, b in zip(params, slots, together, strict=True):
        assert_same(train_trial(task, p, slot=s), b)


def test_slots_with_dropout_train_one_after_another_with_the_same_results(
    make_task: MakeTask,
) -> None:
    from adamtune.train import batched

    task = make_task(epochs=2, model="  arch: mlp\n  hidden: [16]\n  dropout: 0.3\n")
    params, slots = MIXED[:3], [2, 1, 2]
    assert not batched._one_stack(task, [task.runs(1), task.runs(2)])
    seen: list[int] = []
    together = train_batch(task, params, lambda i, e, v: seen.append(i) is not None, slots)
    assert sorted(set(seen)) == [0, 1, 2]  # each member's epochs reported under its own index
    for p, s, b in zip(params, slots, together, strict=True):
        assert_same(train_trial(task, p, slot=s), b)
