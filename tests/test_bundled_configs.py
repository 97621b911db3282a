"""Every bundled config really trains: two trials each (defaults, then one lr trial)."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from adamtune.config.schema import load_config
from adamtune.search import SearchOptions, run_search

ROOT = Path(__file__).resolve().parents[1]
OWN_TRAINING = ROOT / "examples" / "own-training" / "config.yaml"
CONFIGS = sorted((ROOT / "configs").glob("*.yaml")) + [
    ROOT / "examples" / "custom-model" / "config.yaml",
    OWN_TRAINING,
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", CONFIGS, ids=[p.stem if p.stem != "config" else p.parent.name for p in CONFIGS]
)
def test_bundled_config_trains(path: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'bundled.db'}"
    run = run_search(load_config(path), SearchOptions(storage=storage, trials=2))
    study = optuna.load_study(study_name=run.study, storage=storage)
    assert [t.user_attrs["stage"] for t in study.trials] == ["defaults", "lr"]
    baseline = study.trials[0]
    assert baseline.value is not None and math.isfinite(baseline.value)
    assert baseline.user_attrs["epochs"] == load_config(path).config.train.epochs


def test_the_own_training_example_searches_on_its_f1_metric(tmp_path: Path) -> None:
    """The example's training function (augmentation, label smoothing, gradient clipping)
    under its second metric, a macro F1 from the same module, maximised."""
    from adamtune.api import tune

    storage = f"sqlite:///{tmp_path / 'example.db'}"
    result = tune(
        OWN_TRAINING,
        storage=storage,
        trials=5,
        train__epochs=2,
        train__metric="training:macro_f1",
        train__direction="maximize",
    )
    study = optuna.load_study(study_name=result.run.study, storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    values = [t.value for t in study.trials]
    assert len(values) == 5 and all(v is not None and 0.0 < v <= 1.0 for v in values)
    assert result.best.metric == "val macro_f1" and result.best.maximize
