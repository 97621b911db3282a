"""adamtune's winner where Optuna's tools look: the study's user attributes and its
optuna-dashboard note (a real optuna-dashboard install: the test extra has it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from adamtune.config.schema import load_config
from adamtune.insight.results import BestResult, best_result
from adamtune.search import SearchOptions, run_search
from adamtune.search.winner import WINNER_ATTR


def searched(
    write_config: Callable[..., Path], storage_url: str, old: str, new: str, trials: int
) -> tuple[optuna.Study, BestResult, dict[str, Any]]:
    """The tiny study (``old`` replaced by ``new`` in its config) searched: the study, its
    winner as ``adamtune best`` reads it, and the record the search left in the study."""
    text = write_config(trials=trials).read_text().replace(old, new)
    run_search(load_config(write_config(text, name="changed")), SearchOptions(storage=storage_url))
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    return study, best_result(study), study.user_attrs[WINNER_ATTR]


@pytest.mark.slow
def test_after_a_search_the_study_names_adamtune_s_winner(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    dashboard = pytest.importorskip("optuna_dashboard")
    study, best, record = searched(
        write_config, storage_url, "confirm: {seeds: 1}", "confirm: {seeds: 3}", 30
    )
    assert record["trial"] == best.trial and record["verdict"] == best.verdict
    assert record["value"] == pytest.approx(best.value) and record["seeds"] == best.seeds
    assert record["params"] == {
        **best.params.torch_kwargs(),
        "betas": list(best.params.torch_kwargs()["betas"]),
    }
    note = dashboard.get_note(study)
    assert f"**Winner: trial {best.trial}**" in note and f"**{best.verdict}**" in note
    assert "Optuna's best trial is the best single run" in note


def test_the_winner_of_a_study_that_maximises_accuracy_is_stated_as_an_accuracy(
    write_config: Callable[..., Path], storage_url: str
) -> None:
    dashboard = pytest.importorskip("optuna_dashboard")
    study, best, record = searched(
        write_config, storage_url, "epochs: 3", "epochs: 3\n  metric: accuracy", 8
    )
    assert record["direction"] == "maximize" and record["metric"] == "val accuracy"
    assert record["value"] == pytest.approx(best.value) and 0.0 < best.value <= 1.0
    assert record["value"] == pytest.approx(study.trials[best.trial].value)
    assert "val accuracy" in dashboard.get_note(study)
