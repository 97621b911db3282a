"""Every bundled config really trains: two trials each (defaults, then one lr trial)."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from adamtune.config.schema import load_config
from adamtune.search import SearchOptions, run_search

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml")) + [
    ROOT / "examples" / "custom-model" / "config.yaml"
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
