"""The planner (``search.steps.next_step``): the study's trials so far -> what runs next."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from adamtune.config.schema import load_config
from adamtune.search.drawing import StageSampler
from adamtune.search.plan import BASELINE
from adamtune.search.steps import Context, Run, Stop, Wait, next_step


def _context(write_config: Callable[..., Path], trials: int, batch: int) -> Context:
    config = load_config(write_config(trials=trials)).config
    return Context(config, trials, batch=batch)


def test_an_empty_study_trains_the_defaults_beside_the_first_stage_s_draws(
    write_config: Callable[..., Path],
) -> None:
    ctx = _context(write_config, 12, batch=32)
    step = next_step([], ctx, StageSampler(ctx.config, batched=True), set())
    assert isinstance(step, Run) and step.stage == "lr" and step.prunable
    stages = [m.attrs.get("stage") for m in step.members]
    assert stages[0] == BASELINE and stages[1:] == [None] * (len(stages) - 1)
    draws = [m.coords for m in step.members[1:]]
    assert len(draws) >= 2 and len({str(sorted(d.items())) for d in draws}) == len(draws)


def test_one_at_a_time_the_defaults_come_alone(write_config: Callable[..., Path]) -> None:
    ctx = _context(write_config, 12, batch=1)
    step = next_step([], ctx, StageSampler(ctx.config, batched=False), set())
    assert isinstance(step, Run) and step.stage == BASELINE and len(step.members) == 1
    assert not step.prunable


def test_a_running_baseline_elsewhere_is_waited_for(write_config: Callable[..., Path]) -> None:
    ctx = _context(write_config, 12, batch=8)
    running = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={"stage": BASELINE})
    step = next_step([running], ctx, StageSampler(ctx.config, batched=True), set())
    assert isinstance(step, Wait) and "Adam's defaults" in step.message


def test_a_spent_budget_stops(write_config: Callable[..., Path]) -> None:
    ctx = _context(write_config, 2, batch=1)
    done = [
        optuna.trial.create_trial(value=0.5, user_attrs={"stage": BASELINE}),
        optuna.trial.create_trial(value=0.4, user_attrs={"stage": "lr"}),
    ]
    step = next_step(done, ctx, StageSampler(ctx.config, batched=False), set())
    assert isinstance(step, Stop) and step.reason == "budget"


def test_a_data_file_moves_the_draws_by_its_name_not_its_folder(tmp_path: Path) -> None:
    import numpy as np

    configs = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        np.savez(tmp_path / folder / "data.npz", x=np.zeros((40, 2)), y=np.arange(40) % 2)
        path = tmp_path / folder / "c.yaml"
        path.write_text(f"data: {{source: {tmp_path / folder / 'data.npz'}}}\n")
        configs.append(load_config(path).config)
    a, b = (StageSampler(c).seed for c in configs)
    assert a == b
