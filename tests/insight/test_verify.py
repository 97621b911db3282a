"""adamtune verify: the winner, the runner-up and the defaults retrained on fresh seeds."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from conftest import config_text
from typer.testing import CliRunner, Result

from adamtune.cli import app
from adamtune.insight.verify import ATTR, FIRST_SLOT, Verification, Verified, _judge
from adamtune.train.params import ADAM_DEFAULTS, AdamParams


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
def test_verify_retrains_three_sets_on_fresh_slots_and_stores_it(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    path = write_config(trials=8)
    runner = CliRunner()
    assert runner.invoke(app, ["search", str(path), "--storage", storage_url, "-q"]).exit_code == 0
    best = json.loads(
        runner.invoke(app, ["best", str(path), "--storage", storage_url, "--format", "json"]).stdout
    )
    result = runner.invoke(
        app, ["verify", str(path), "--storage", storage_url, "--seeds", "3", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["slots"] == [FIRST_SLOT, FIRST_SLOT + 1, FIRST_SLOT + 2] and data["seeds"] == 3
    runs = {r["label"]: r for r in data["runs"]}
    assert set(runs) == {"best", "runner_up", "defaults"}
    assert runs["best"]["params"] == best["params"] and runs["best"]["trial"] == best["trial"]
    assert runs["defaults"]["params"]["lr"] == 1e-3
    for other in ("best", "defaults"):  # a second opinion: more than amsgrad flipped
        differ = {
            k for k, v in runs["runner_up"]["params"].items() if v != runs[other]["params"][k]
        }
        assert differ - {"amsgrad", "decoupled_weight_decay"}, (other, differ)
    assert all(len(r["values"]) == 3 for r in runs.values())
    assert data["verdict"] in ("holds", "not_established", "worse")
    assert data["fresh_splits"] is True
    # Fresh slots: none of these values is one the study measured.
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    seen = {t.value for t in study.trials}
    assert not seen & set(runs["best"]["values"])
    assert study.user_attrs[ATTR] == data
    # Deterministic: verifying again gives the same numbers; the table says the verdict.
    table = runner.invoke(app, ["verify", "--storage", storage_url, "--seeds", "3"]).stdout
    assert "best (trial" in table and "runner-up (trial" in table and "paired t-test" in table
    assert optuna.load_study(study_name="tiny", storage=storage_url).user_attrs[ATTR] == data


def _verification(
    best: list[float | None], defaults: list[float | None], same: bool = False
) -> Verification:
    winner = ADAM_DEFAULTS if same else AdamParams(lr=3e-3)
    return Verification(
        "s",
        list(range(len(best))),
        [Verified("best", 5, winner, best), Verified("defaults", 0, ADAM_DEFAULTS, defaults)],
    )


@pytest.mark.parametrize(
    ("best", "defaults", "verdict"),
    [
        ([0.10, 0.12, 0.09, 0.11, 0.10], [0.12, 0.14, 0.11, 0.13, 0.125], "holds"),
        ([0.12, 0.14, 0.11, 0.13, 0.125], [0.10, 0.12, 0.09, 0.11, 0.10], "worse"),
        ([0.10, 0.13, 0.09, 0.12, 0.10], [0.11, 0.12, 0.10, 0.11, 0.105], "not_established"),
        ([0.10, None, 0.09, 0.11, 0.10], [0.12, 0.14, 0.11, 0.13, 0.125], "worse"),
        ([0.50, 0.75, 1.00], [0.25, 0.50, 0.75], "worse"),  # worse by the same amount each time
        ([0.10, 0.12, 0.09, 0.11], [None, 0.14, 0.11, 0.13], "holds"),  # the defaults diverged once
        ([None, 0.12, 0.09, 0.11, 0.10], [None, 0.14, 0.11, 0.13, 0.125], "holds"),  # both did
        ([0.1, 0.1000001, 0.1], [0.1000001, 0.1000002, 0.1000001], "not_established"),  # too small
    ],
)
def test_the_paired_verdict(
    best: list[float | None], defaults: list[float | None], verdict: str
) -> None:
    result = _verification(best, defaults)
    _judge(result)
    assert result.verdict == verdict
    if verdict == "holds":
        assert result.wins >= 4 and result.p_value is not None and result.p_value < 0.05


def test_a_winner_that_is_the_defaults_is_not_compared() -> None:
    result = _verification([0.1, 0.1], [0.1, 0.1], same=True)
    _judge(result)
    assert result.verdict == "same_params"


def test_verify_needs_a_study_made_by_search(storage_url: str) -> None:
    optuna.create_study(study_name="bare", storage=storage_url).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )
    result = CliRunner().invoke(app, ["verify", "--storage", storage_url, "--study", "bare"])
    assert result.exit_code == 2 and "was not made by adamtune search" in result.output


def _data_function_study(
    write_config: Callable[..., Path], user_module: Callable[[str], str], trials: int
) -> tuple[str, Path]:
    """A config whose data comes from a user's function (which returns its own split), and
    the function's module name."""
    module = user_module("""
        import torch

        def make():
            g = torch.Generator().manual_seed(0)
            x = torch.randn(80, 4, generator=g)
            y = (x[:, 0] > 0).long()
            return (x[:60], y[:60]), (x[60:], y[60:])
    """)
    search = f"search:\n  trials: {trials}\n  batch: 1\n  confirm: {{seeds: 1}}\n"
    return module, write_config(config_text(source=f"{module}:make", epochs=2, batch=16) + search)


def test_verify_says_a_data_function_keeps_its_own_split(
    write_config: Callable[..., Path], user_module: Callable[[str], str]
) -> None:
    # A data function returns its split as it is: fresh slots vary the seeds only, and verify
    # must not claim fresh splits.
    _, path = _data_function_study(write_config, user_module, trials=6)
    assert invoke("search", str(path), "--quiet").exit_code == 0
    result = invoke("verify", str(path), "--seeds", "2")
    assert result.exit_code == 0, result.output
    assert "retrained on 2 fresh seeds (on the data function's own split)" in result.stdout
    assert "retraining on 2 fresh seeds (on the data function's own split) ..." in result.stderr
    data = json.loads(invoke("verify", str(path), "--seeds", "2", "-f", "json").stdout)
    assert data["fresh_splits"] is False


def test_verify_by_study_name_from_another_folder_finds_the_user_s_module(
    write_config: Callable[..., Path],
    user_module: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The study keeps its config's folder: verify --study, run elsewhere with no config,
    # imports the data function from there (it used to fail: nothing put that folder on the
    # import path).
    module, path = _data_function_study(write_config, user_module, trials=4)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    assert invoke("search", str(path), "--quiet", "--storage", url).exit_code == 0
    sys.modules.pop(module)  # a fresh process would not have it, nor the folder on sys.path
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("verify", "--study", "tiny", "--storage", url, "--seeds", "2")
    assert result.exit_code == 0, result.output
    assert "retrained on 2 fresh seeds (on the data function's own split)" in result.stdout
