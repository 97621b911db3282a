"""The LR range test: the ladder, the stopping rule, the suggestions, and no leaks."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from torch import nn

from adamtune.train.engine import train_trial
from adamtune.train.lr_find import (
    RangeCurve,
    ladder,
    range_test_model,
    run_range_test,
    suggest,
    summarise,
    withheld,
)
from adamtune.train.params import ADAM_DEFAULTS

if TYPE_CHECKING:
    from conftest import MakeTask


def test_the_ladder_is_log_even_from_start_to_end_first_step_included() -> None:
    lrs = ladder(1e-7, 10.0, 100)
    assert len(lrs) == 100 and lrs[0] == 1e-7 and lrs[-1] == pytest.approx(10.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios)) == pytest.approx(10 ** (8 / 99))


def test_suggestions_read_a_known_curve() -> None:
    lrs = ladder(1e-6, 1.0, 61)

    # flat at 2, falls fastest at 1e-3 (a logistic in log10 lr), bottoms out, rises from 1e-1
    def loss(lr: float) -> float:
        x = math.log10(lr)
        return 2 - 1.5 / (1 + math.exp(-4 * (x + 3))) + (max(0.0, x + 1) ** 2) * 3

    curve = [loss(lr) for lr in lrs]
    found = suggest(lrs, curve)
    assert found["steep"] == pytest.approx(1e-3, rel=0.3)
    lowest = lrs[curve.index(min(curve))]
    assert found["minimum/10"] == pytest.approx(lowest / 10)
    assert found["largest_stable"] is not None and 0.1 < found["largest_stable"] < 1.0
    assert found["valley"] is not None and 1e-4 < found["valley"] < lowest


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("limit", [1e-3, 1e-2, 1e-1])
def test_largest_stable_is_within_2x_of_a_closed_form_limit(seed: int, limit: float) -> None:
    """Full-batch least squares, Adam with its default betas and an eps far above every
    gradient: the update is then lr / eps times a moving average of the gradient (heavy-ball
    momentum), and on a quadratic whose Hessian has largest eigenvalue L it diverges exactly
    above lr = 2 (1 + beta1) / (1 - beta1) * eps / L (38 eps / L at beta1 = 0.9)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=gen) * torch.linspace(0.3, 1.0, 8)
    y = x @ torch.randn(8, 1, generator=gen) + 0.1 * torch.randn(256, 1, generator=gen)
    top = float(torch.linalg.eigvalsh(2 * x.T @ x / len(x)).max())  # Hessian of the MSE
    beta1 = 0.9
    eps = limit * top * (1 - beta1) / (2 * (1 + beta1))
    y = y * eps * 1e-2  # gradients ~100x below eps, so eps sets the step size
    model = nn.Linear(8, 1, bias=False)
    nn.init.zeros_(model.weight)
    optimizer = torch.optim.Adam(model.parameters(), betas=(beta1, 0.999), eps=eps)
    curve = range_test_model(
        model, optimizer, _batches(x, y), nn.functional.mse_loss, ladder(1e-7, 10.0, 100)
    )
    assert curve.stopped == "diverged"
    found = curve.suggestions["largest_stable"]
    assert found is not None and limit / 2 <= found <= 2 * limit


def _batches(x: torch.Tensor, y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield x, y


def test_the_test_puts_model_and_optimizer_back_exactly() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    for _ in range(3):  # some optimizer state to keep
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    state = {
        p: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
        for p, s in optimizer.state.items()
    }
    rng = torch.get_rng_state()
    curve = range_test_model(
        model, optimizer, _batches(x, y), nn.functional.mse_loss, ladder(1e-6, 10.0, 50)
    )
    assert len(curve.lrs) > 5
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k])
    assert optimizer.param_groups[0]["lr"] == 1e-3
    for p, s in optimizer.state.items():
        for k, v in s.items():
            assert torch.equal(v, state[p][k]) if isinstance(v, torch.Tensor) else v == state[p][k]
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_test_stops_once_the_smoothed_loss_passes_four_times_its_minimum() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.Adam(model.parameters())
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    curve = range_test_model(
        model, optimizer, _batches(x, y), nn.functional.mse_loss, ladder(1e-5, 1e4, 100)
    )
    assert curve.stopped == "diverged" and len(curve.lrs) < 100
    assert curve.smoothed[-1] > 4 * min(curve.smoothed)
    assert all(v <= 4 * min(curve.smoothed[: i + 1]) for i, v in enumerate(curve.smoothed[:-1]))


def test_nothing_of_the_test_leaks_into_a_trial(make_task: MakeTask) -> None:
    task = make_task(epochs=3, model="  arch: mlp\n  hidden: [16]\n  dropout: 0.2\n")
    before = train_trial(task, ADAM_DEFAULTS)
    curves = run_range_test(task, seeds=2, steps=30)
    assert len(curves) == 2 and curves[0].lrs != [] and curves[0].losses != curves[1].losses
    after = train_trial(task, ADAM_DEFAULTS)
    assert after.val_curve == before.val_curve and after.value == before.value


def test_lr_find_from_the_command_line(write_config: Callable[..., Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from adamtune.cli import app

    path = write_config(trials=5)
    png = tmp_path / "lrf.png"
    result = CliRunner().invoke(
        app,
        [
            "lr-find",
            str(path),
            "--seeds",
            "2",
            "--steps",
            "40",
            "--format",
            "json",
            "--plot",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["suggestions"]) == {"steep", "valley", "minimum/10", "largest_stable"}
    assert len(data["suggestions"]["valley"]["per_seed"]) == 2 and len(data["curves"]) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = CliRunner().invoke(app, ["lr-find", str(path), "--steps", "40"])
    assert table.exit_code == 0 and "largest_stable" in table.stdout and "lr 1e-07" in table.stdout
    bad = CliRunner().invoke(app, ["lr-find", str(path), "--start", "1", "--end", "0.1"])
    assert bad.exit_code == 2 and "need 0 < start < end" in bad.output


def _curve(smoothed: list[float], stopped: str = "diverged") -> RangeCurve:
    lrs = ladder(1e-7, 10.0, len(smoothed))
    curve = RangeCurve(lrs, list(smoothed), list(smoothed), stopped)
    curve.suggestions = suggest(lrs, curve.smoothed, curve.losses)
    return curve


def test_a_curve_whose_loss_never_fell_recommends_nothing() -> None:
    # A noisy regression whose loss only wanders (as the one that gave "steep 1.45e-07,
    # spread 1x"): every reading is withheld, and the table says why.
    flat = [1.0 + 0.004 * ((i * 7) % 5) for i in range(60)]
    curve = _curve(flat)
    curve.withheld = withheld(curve)
    assert set(curve.withheld) == {k for k, v in curve.suggestions.items() if v is not None}
    assert set(curve.withheld.values()) == {"the loss never fell"}
    summary = summarise([curve, curve])
    assert all(s.median is None and s.spread is None for s in summary if s.withheld)


def test_a_reading_at_the_ladder_s_edge_or_outside_it_is_withheld() -> None:
    # The loss falls from the first step on and is lowest at the second: minimum/10 is below
    # the first lr tried; the curve never blew up, so the largest stable rate is the end.
    falling_then_flat = [1.0, 0.5] + [0.55 + 0.001 * i for i in range(40)]
    curve = _curve(falling_then_flat, stopped="end")
    reasons = withheld(curve)
    assert reasons["minimum/10"].startswith("below the learning rates tried")
    assert reasons["steep"].startswith("at the ladder's start")
    # A healthy curve: a long fall in the middle, then a blow-up; nothing is withheld.
    healthy = [1.0] * 10 + [1.0 - 0.02 * i for i in range(30)] + [0.4 + 0.2 * i for i in range(8)]
    assert withheld(_curve(healthy)) == {}
