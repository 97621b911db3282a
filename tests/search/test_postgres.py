"""Studies in a real PostgreSQL database: search, resume, read back; no password shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from postgres import PASSWORD
from typer.testing import CliRunner

from adamtune.cli import app


@pytest.mark.slow
def test_a_study_lives_in_postgresql_and_resumes_there(
    write_config: Callable[..., Path], postgres_url: str
) -> None:
    path = write_config(name="pg", trials=4)
    runner = CliRunner()
    env = {"ADAMTUNE_STORAGE": postgres_url}  # the URL in the environment, not on a command line
    first = runner.invoke(app, ["search", str(path), "-q"], env=env)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["search", str(path), "-q", "--trials", "6"], env=env)
    assert again.exit_code == 0, again.output
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    assert len(study.trials) == 6 and [t.number for t in study.trials] == list(range(6))
    best = json.loads(runner.invoke(app, ["best", "--format", "json"], env=env).stdout)
    assert best["study"] == "pg" and best["n_trials"] == 6
    assert best["storage"] == postgres_url.replace(PASSWORD, "***")
    for result in (first, again):
        assert PASSWORD not in result.output


def test_a_wrong_password_fails_in_one_line_without_showing_it(
    write_config: Callable[..., Path], postgres_url: str
) -> None:
    wrong = postgres_url.replace(PASSWORD, "Not-The-Pw-0815")
    for debug in ([], ["--debug"]):
        result = CliRunner().invoke(
            app, ["search", str(write_config(trials=3)), "--storage", wrong, *debug]
        )
        assert result.exit_code == 1, result.output
        assert "Not-The-Pw-0815" not in result.output and "tuner:***@127.0.0.1" in result.output


@pytest.mark.slow
def test_three_workers_share_a_staged_study_exactly(
    write_config: Callable[..., Path], postgres_url: str
) -> None:
    from test_workers import SLOW_TRIALS, check_shared_study, start_worker, study_trials

    path = write_config(SLOW_TRIALS.format(name="three", epochs=60, trials=30))
    workers = [start_worker(path, postgres_url, "--batch", "1") for _ in range(3)]
    for worker in workers:
        _, errors = worker.communicate(timeout=600)
        assert worker.returncode == 0, errors.decode()
        assert PASSWORD not in errors.decode()
    trials = study_trials(postgres_url, "three")
    check_shared_study(trials, 30)  # exactly 30, unique numbers, stage order, fixed values
    assert len({t.user_attrs["worker"] for t in trials}) == 3


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_its_trial_to_the_others_once(
    write_config: Callable[..., Path], postgres_url: str
) -> None:
    from test_workers import (
        SLOW_TRIALS,
        _running_trial_of,
        check_shared_study,
        kill_in_trial,
        start_worker,
        study_trials,
    )

    # Trials long enough to be caught mid-way: at 80 epochs (~0.3 s a trial) one run of a
    # fresh clone's suite saw the worker finish every searched trial between two looks.
    path = write_config(SLOW_TRIALS.format(name="kill9", epochs=160, trials=30))
    # Killed in whichever searched trial it trains first (the others may take a whole stage
    # while it runs noise trials); it is under way before they start.
    doomed = start_worker(path, postgres_url, "--batch", "1")
    try:
        _running_trial_of(postgres_url, "kill9", doomed.pid, "defaults", limit=120)
        others = [start_worker(path, postgres_url, "--batch", "1") for _ in range(2)]
        searched = ("lr", "betas", "eps", "weight_decay", "amsgrad", "confirm")
        victim = kill_in_trial(doomed, postgres_url, "kill9", searched)
    except AssertionError:
        doomed.kill()
        raise AssertionError(f"the victim: {doomed.communicate()[1].decode()[-2000:]}") from None
    for worker in others:
        _, errors = worker.communicate(timeout=600)
        assert worker.returncode == 0, errors.decode()
    trials = study_trials(postgres_url, "kill9")
    check_shared_study(trials, 30)
    killed = trials[victim.number]
    assert killed.state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and retries[0].params == victim.params
    assert retries[0].user_attrs["adam"] == victim.user_attrs["adam"]
