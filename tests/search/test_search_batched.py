"""A search that trains its trials in batches (``search.batch`` / ``--batch``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from adamtune.cli import app
from adamtune.config.schema import load_config
from adamtune.search import SearchObserver, SearchOptions, SearchStart, run_search
from adamtune.search.plan import BASELINE
from adamtune.task.build import build_task
from adamtune.train.engine import train_trial
from adamtune.train.params import AdamParams

STAGES = [BASELINE, "lr", "betas", "eps", "weight_decay", "amsgrad"]


def _trials(storage: str, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


@pytest.mark.slow
def test_batched_search_keeps_the_plan_and_each_trial_is_what_it_gives_alone(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    settings = load_config(write_config(trials=16))
    run = run_search(settings, SearchOptions(storage=storage_url, batch=4))
    assert run.started.batch == 4 and run.started.batch_note is None
    trials = _trials(storage_url)
    assert len(trials) == 16 and all(t.state != TrialState.FAIL for t in trials)
    stages = [t.user_attrs["stage"] for t in trials]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == STAGES
    # Batches hold at most 4 trials; the first is the defaults and the first lr draws, and
    # no later batch crosses a stage boundary.
    sizes = [t.user_attrs.get("batch", 1) for t in trials]
    assert max(sizes) == 4 and sizes[0] == 4 and stages[:4] == [BASELINE, "lr", "lr", "lr"]
    task = build_task(settings)
    for t in trials:
        alone = train_trial(task, AdamParams.from_dict(t.user_attrs["adam"]))
        if t.user_attrs["status"] == "pruned":
            continue  # pruned by the batch's pruner at its own epoch; alone it runs on
        assert t.user_attrs["val_curve"] == pytest.approx(alone.val_curve, rel=1e-4)
        assert t.value == pytest.approx(alone.value, rel=1e-4)


@pytest.mark.slow
def test_a_batch_draws_distinct_well_spread_points(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    settings = load_config(write_config(trials=24))
    run_search(settings, SearchOptions(storage=storage_url, batch=8))
    lr_stage = [t for t in _trials(storage_url) if t.user_attrs["stage"] == "lr"]
    first = sorted(t.params["lr"] for t in lr_stage[:7])  # beside the defaults, in one batch
    assert len(set(first)) == 7
    # Sobol over log10(lr) in [-5, -1]: every quarter of the range gets a point.
    import math

    quarters = {min(int((math.log10(v) + 5) // 1), 3) for v in first}
    assert quarters == {0, 1, 2, 3}


@pytest.mark.slow
def test_ctrl_c_in_a_batch_fails_its_trials_and_resume_redraws_them(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    class StopInTrial3(SearchObserver):
        def epoch_finished(self, number: int, epoch: int, epochs: int, value: float) -> None:
            if number == 3 and epoch == 1:
                raise KeyboardInterrupt

    settings = load_config(write_config(trials=12))
    options = SearchOptions(storage=storage_url, batch=4)
    with pytest.raises(KeyboardInterrupt):
        run_search(settings, options, StopInTrial3())
    trials = _trials(storage_url)
    # The first batch (the defaults and three lr draws) failed as one, and was recorded so
    assert [t.state for t in trials] == [TrialState.FAIL] * 4
    assert {t.user_attrs["status"] for t in trials} == {"interrupted"}
    run_search(settings, options)
    finished = [t for t in _trials(storage_url) if t.state != TrialState.FAIL]
    assert len(finished) == 12
    straight = f"{storage_url}-straight.db"
    run_search(settings, SearchOptions(storage=straight, batch=4))
    expected = _trials(straight)
    assert [t.user_attrs["adam"] for t in finished] == [t.user_attrs["adam"] for t in expected]
    assert [t.value for t in finished] == [t.value for t in expected]


def test_an_unbatchable_model_runs_one_at_a_time_with_a_notice(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    text = (
        write_config(trials=6)
        .read_text()
        .replace("train:\n", "train:\n  precision: fp16\n")
        .replace("name: tiny", "name: fp16")
    )
    starts: list[SearchStart] = []

    class Watch(SearchObserver):
        def search_started(self, start: SearchStart) -> None:
            starts.append(start)

    run_search(
        load_config(write_config(text, name="fp16")),
        SearchOptions(storage=storage_url, batch="auto"),
        Watch(),
    )
    assert starts[0].batch == 1
    assert starts[0].batch_note is not None and "fp16" in starts[0].batch_note
    assert all("batch" not in t.user_attrs for t in _trials(storage_url, "fp16"))


def test_cli_batch_option(write_config: Callable[..., Path]) -> None:
    runner = CliRunner()
    path = write_config(trials=8)
    bad = runner.invoke(app, ["search", str(path), "--batch", "0"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: --batch: must be a whole number >= 1 or 'auto' (got '0')"
    good = runner.invoke(app, ["search", str(path), "--batch", "3", "--quiet"])
    assert good.exit_code == 0, good.output
    assert "up to 3 trials trained together per batch (--batch 3)" in good.stderr
    sizes = [t.user_attrs.get("batch", 1) for t in _trials("sqlite:///adamtune.db")]
    assert max(sizes) == 3


def test_batching_is_the_default(write_config: Callable[..., Path], storage_url: str) -> None:
    text = write_config(trials=12).read_text().replace("  batch: 1\n", "")
    run = run_search(
        load_config(write_config(text, name="default")), SearchOptions(storage=storage_url)
    )
    assert run.started.batch == 32  # auto, for a model this small
    sizes = [t.user_attrs.get("batch", 1) for t in _trials(storage_url)]
    assert sizes[0] > 1 and max(sizes) > 1


def test_the_cli_prints_why_it_did_not_batch(write_config: Callable[..., Path]) -> None:
    text = write_config(trials=4).read_text().replace("train:\n", "train:\n  precision: fp16\n")
    path = write_config(text, name="fp16cli")
    result = CliRunner().invoke(app, ["search", str(path), "--batch", "8", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "trials are trained one at a time: fp16 gradient scaling" in result.stderr


@pytest.mark.slow
def test_the_confirmation_trains_every_seed_slot_in_one_round(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    # 30 trials: one candidate and the defaults on 3 fresh slots, 6 re-runs asked together
    # (each with its own slot's split and seeds), each as it would be alone.
    text = write_config(trials=30).read_text().replace("confirm: {seeds: 1}", "confirm: {seeds: 4}")
    settings = load_config(write_config(text, name="confirmed"))
    run_search(settings, SearchOptions(storage=storage_url, batch=8))
    trials = _trials(storage_url)
    reruns = [t for t in trials if "confirms" in t.user_attrs]
    assert len(reruns) == 6
    assert {t.user_attrs["slot"] for t in reruns} == {1, 2, 3}
    assert {t.user_attrs.get("batch") for t in reruns} == {6}  # one round
    task = build_task(settings)
    for t in reruns[:2]:
        alone = train_trial(
            task, AdamParams.from_dict(t.user_attrs["adam"]), slot=t.user_attrs["slot"]
        )
        assert t.value == pytest.approx(alone.value, rel=1e-5)
