"""What a trial is judged on: accuracy, the user's own metric function, and the checks that
stop a metric that cannot work before any trial trains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest
import torch
from typer.testing import CliRunner

from adamtune.cli import app
from adamtune.config.schema import load_config
from adamtune.errors import ConfigError
from adamtune.task.build import build_task
from adamtune.task.metrics import accuracy
from adamtune.train.engine import train_trial
from adamtune.train.params import ADAM_DEFAULTS

if TYPE_CHECKING:
    from conftest import WriteModule

runner = CliRunner()


def test_accuracy_of_class_logits_and_of_a_single_binary_logit() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 0])) == 0.75
    binary = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    assert accuracy(binary, torch.tensor([[1.0], [0.0], [0.0], [0.0]])) == 0.75


def test_accuracy_needs_class_labels(write_config: Callable[..., Path]) -> None:
    path = write_config("data: {source: diabetes}\ntrain: {metric: accuracy}\n")
    with pytest.raises(ConfigError, match=r"train.metric: accuracy needs class labels"):
        build_task(load_config(path))


def test_a_metric_function_by_import_path_is_the_trials_value_in_its_direction(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module(
        """\
        def mae(outputs, targets):
            return (outputs - targets).abs().mean().item()
        """
    )
    path = write_config(
        "name: mae\ndata: {source: diabetes, batch_size: 32}\nmodel: {hidden: [8]}\n"
        f"train: {{epochs: 3, device: cpu, metric: '{module}:mae', direction: minimize}}\n"
        "search: {trials: 4, confirm: {seeds: 1}, space: {schedule: [none]}}\n"
    )
    task = build_task(load_config(path))
    alone = train_trial(task, ADAM_DEFAULTS)

    result = runner.invoke(app, ["search", str(path)])

    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="mae", storage="sqlite:///adamtune.db")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.trials[0].value == pytest.approx(alone.value, rel=1e-6)
    assert study.trials[0].user_attrs["val_curve"] == pytest.approx(alone.val_curve, rel=1e-6)
    assert "val mae" in runner.invoke(app, ["best", str(path)]).output


def test_validate_scores_the_first_batch_with_the_metric_and_rejects_one_that_fails(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module(
        """\
        def broken(outputs, targets):
            return outputs.sum(dim=7)
        """
    )
    path = write_config(
        f"data: {{source: iris}}\ntrain: {{metric: '{module}:broken', direction: maximize}}\n"
    )

    result = runner.invoke(app, ["validate", str(path)])

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.metric: cannot score the first batch" in lines[0]
    assert "IndexError" in lines[0] and "Traceback" not in result.stderr


def test_a_missing_training_function_is_one_line_naming_train_step(
    write_config: Callable[..., Path],
) -> None:
    path = write_config("data: {source: iris}\ntrain: {step: 'nowhere_module:train'}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "train.step: cannot import 'nowhere_module:train'" in result.stderr
