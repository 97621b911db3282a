"""The Optuna internals adamtune relies on (``adamtune.search.optuna_private``) are still where
it reaches for them: a release that moves one fails here, by name, not deep in a search."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest

from adamtune.search import optuna_private as private


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_a_study_s_storage_and_a_trial_s_id(tmp_path: Path, where: str) -> None:
    url = None if where == "memory" else f"sqlite:///{tmp_path / 'p.db'}"
    study = optuna.create_study(storage=url, study_name="p")
    trial = study.ask()
    storage = private.storage_of(study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert storage.get_trial(private.trial_id(trial)).number == trial.number
    backend = private.backend_of(study)
    if where == "sqlite":
        assert isinstance(backend, optuna.storages.RDBStorage)  # behind Optuna's cache
    else:
        assert backend is storage


def test_the_rdb_models_and_session_helper_write_a_row(tmp_path: Path) -> None:
    internals = private.rdb_internals()
    assert internals is not None
    models, scoped = internals
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'm.db'}")
    trial = study.ask()
    backend = private.backend_of(study)
    for name in ("_set_trial_attr_without_commit", "_set_trial_intermediate_value_without_commit"):
        assert hasattr(backend, name), name
    with scoped(backend.scoped_session) as session:
        row = models.TrialModel.find_or_raise_by_id(private.trial_id(trial), session)
        assert row.number == trial.number
        assert models.TrialUserAttributeModel and models.TrialIntermediateValueModel


def test_the_heartbeat_interfaces(tmp_path: Path) -> None:
    base, enabled = private.heartbeat_interfaces()
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=10, grace_period=30
    )
    assert isinstance(storage, base) and enabled(storage)
    assert hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval() == 10


def test_the_in_memory_storage_logs_under_the_name_adamtune_quiets() -> None:
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.name)

    handler = Catch(level=logging.INFO)
    root = logging.getLogger("optuna")
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        optuna.create_study()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert private.IN_MEMORY_LOGGER in seen
