"""The Python API: tune, load_best and best_optimizer do what the CLI does, without printing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import adamtune
from adamtune.cli import app
from adamtune.errors import ConfigError


def test_tune_runs_a_config_with_overrides_and_returns_the_winner(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=12)
    result = adamtune.tune(path, storage=storage_url, trials=4, train__epochs=2)
    assert len(result.run.ran) == 4 and result.best.n_trials == 4
    assert all(row.epochs is not None and row.epochs <= 2 for row in result.run.ran)
    assert result.params == result.best.params.torch_kwargs()
    cli = json.loads(
        CliRunner()
        .invoke(app, ["best", "--storage", storage_url, "--study", "tiny", "--format", "json"])
        .stdout
    )
    assert cli["params"] == result.params and cli["value"] == result.best.value
    # Resuming through the API continues the same study.
    again = adamtune.tune(path, storage=storage_url, trials=5, train__epochs=2)
    assert len(again.run.ran) == 1 and again.best.n_trials == 5


def test_tune_takes_a_mapping(storage_url: str) -> None:
    config = {
        "name": "from-dict",
        "data": {"source": "iris", "batch_size": 32},
        "model": {"arch": "linear"},
        "train": {"epochs": 2},
        "search": {"trials": 3, "batch": 1},
    }
    result = adamtune.tune(config, storage=storage_url)
    assert result.run.study == "from-dict" and result.best.n_trials == 3


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"train__epochs": 0}, "train.epochs: must be >= 1"),
        ({"train.epoch": 3}, "train.epoch: unknown key"),
        ({"data__source__x": 1}, "'source' is not a mapping"),
        ({"trials": 0}, "trials: must be a whole number >= 1 (got 0)"),
        ({"fresh": "no"}, "fresh: must be True or False (got 'no')"),
        ({"batch": 0}, "batch: must be a whole number >= 1 or 'auto' (got 0)"),
    ],
)
def test_bad_overrides_are_config_errors(
    write_config: Callable[..., Path], storage_url: str, overrides: dict[str, object], says: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        adamtune.tune(write_config(), storage=storage_url, **overrides)


def test_overrides_take_numpy_numbers_and_touch_nothing_shared() -> None:
    import numpy as np

    from adamtune.api import settings_from

    shared = {"low": 0.5, "high": 0.99}
    config = {
        "data": {"source": "iris"},
        "search": {"space": {"beta1": shared, "beta2": {"low": 0.9, "high": 0.999}}},
    }
    config["search"]["space"]["beta2"] = shared  # the same mapping twice
    settings = settings_from(
        config, {"search.space.beta1.low": np.float64(0.6), "train__epochs": np.int64(3)}
    )
    space = settings.config.search.space
    assert space.beta1.low == 0.6 and space.beta2.low == 0.5 and shared["low"] == 0.5
    assert settings.config.train.epochs == 3


@pytest.mark.slow
def test_best_optimizer_is_adam_with_the_winning_params(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=5)
    adamtune.tune(path, storage=storage_url)
    model = torch.nn.Linear(4, 3)
    optimizer = adamtune.best_optimizer(model.parameters(), study="tiny", storage=storage_url)
    cli = json.loads(
        CliRunner()
        .invoke(app, ["best", "--storage", storage_url, "--study", "tiny", "--format", "json"])
        .stdout
    )
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.Adam)
    used = {k: (list(group[k]) if k == "betas" else group[k]) for k in cli["params"]}
    assert used == cli["params"]
    assert adamtune.load_best(path, storage=storage_url).params.torch_kwargs() == cli["params"]


def test_best_optimizer_brings_the_chosen_schedule(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=3)
    path.write_text(path.read_text().replace("schedule: [none]", "schedule: [cosine]"))
    adamtune.tune(path, storage=storage_url)
    model = torch.nn.Linear(4, 3)
    optimizer, scheduler = adamtune.best_optimizer(
        model.parameters(), path, storage=storage_url, scheduler=True
    )
    assert isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert scheduler.optimizer is optimizer and scheduler.T_max == 2  # 3 epochs, stepped per epoch


def test_importing_adamtune_imports_neither_torch_nor_optuna() -> None:
    import subprocess
    import sys

    code = "import sys, adamtune; print(sorted(m for m in ('torch', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
