"""``lr: auto``: the rule, the range test run once per study, and where the range is shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from adamtune.cli import app
from adamtune.config.schema import load_config
from adamtune.search import SearchObserver, SearchOptions, lr_auto, run_search
from adamtune.search.lr_auto import ATTR, range_from
from adamtune.search.rows import trial_rows


def auto_config(write_config: Callable[..., Path], trials: int, lr: str = "auto") -> Path:
    """The shared tiny config (conftest.TINY) with lr searched as ``lr``."""
    path = write_config(name="auto", trials=trials)
    path.write_text(path.read_text().replace("  space:\n", f"  space:\n    lr: {lr}\n"))
    return path


def test_the_rule_runs_from_a_tenth_of_the_valley_to_the_largest_stable_lr() -> None:
    assert range_from({"valley": 1e-3, "largest_stable": 0.5}, 1.0) == (1e-4, 0.5)
    # less than a decade apart (a valley above the stable limit): the low end moves down
    assert range_from({"valley": 0.8, "largest_stable": 0.5}, 1.0) == pytest.approx((0.05, 0.5))
    # no largest stable lr found: the highest lr the tests reached stands in
    assert range_from({"valley": 1e-3, "largest_stable": None}, 2.0) == (1e-4, 2.0)
    assert range_from({"valley": None, "largest_stable": 0.5}, 1.0) is None


def test_auto_is_a_config_value(write_config: Callable[..., Path]) -> None:
    lr = load_config(auto_config(write_config, 5)).config.search.space.lr
    assert lr.auto and lr.is_fixed is False


class _Counting(SearchObserver):
    def __init__(self) -> None:
        self.tests = 0

    def range_test_started(self, seeds: int) -> None:
        self.tests += 1


@pytest.mark.slow
def test_an_auto_study_runs_the_range_test_once_stores_it_and_searches_inside_it(
    write_config: Callable[..., Path], storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = auto_config(write_config, 6)
    seen = _Counting()
    run = run_search(load_config(path), SearchOptions(storage=storage_url), seen)
    study = optuna.load_study(study_name=run.study, storage=storage_url)
    stored = study.user_attrs[ATTR]
    assert seen.tests == 1 and run.started.lr_range is not None
    assert stored["low"] == run.started.lr_range.low and stored["seeds"] == lr_auto.SEEDS
    assert stored["high"] / stored["low"] >= 10
    assert stored["low"] == pytest.approx(
        min(stored["suggestions"]["valley"] / 10, stored["high"] / 10)
    )
    lr_trials = [r for r in trial_rows(study) if r.stage == "lr"]
    assert lr_trials and all(
        stored["low"] <= r.params.lr <= stored["high"] for r in lr_trials if r.params
    )

    # Resumed with a larger budget: the stored range is reused, the test is not run again.
    def no_second_test(*args: object) -> None:
        raise AssertionError("the range test ran again on resume")

    monkeypatch.setattr(lr_auto, "measure_range", no_second_test)
    again = _Counting()
    run2 = run_search(load_config(path), SearchOptions(storage=storage_url, trials=9), again)
    assert again.tests == 0 and run2.started.lr_range == run.started.lr_range
    assert len(optuna.load_study(study_name="auto", storage=storage_url).trials) == 9


@pytest.mark.slow
def test_best_and_trials_show_the_range(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = auto_config(write_config, 4)
    runner = CliRunner()
    searched = runner.invoke(app, ["search", str(path), "--storage", storage_url, "--quiet"])
    assert searched.exit_code == 0, searched.output
    assert "lr: auto: the LR range test (3 seeds" in searched.output
    best = runner.invoke(app, ["best", str(path), "--storage", storage_url, "--format", "json"])
    data = json.loads(best.stdout)
    assert data["lr_range"]["rule"] == lr_auto.RULE and data["lr_range"]["low"] > 0
    table = runner.invoke(app, ["trials", str(path), "--storage", storage_url])
    assert f"set the lr range to {data['lr_range']['low']:.2g}" in table.stdout


def test_a_study_with_a_given_range_records_none(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = auto_config(write_config, 3, lr="{low: 1.0e-4, high: 0.1}")
    run = run_search(load_config(path), SearchOptions(storage=storage_url))
    study = optuna.load_study(study_name=run.study, storage=storage_url)
    assert ATTR not in study.user_attrs and run.started.lr_range is None
