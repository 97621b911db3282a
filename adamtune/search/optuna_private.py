"""Every use of Optuna's private parts, in one place.

adamtune needs a few things Optuna keeps private: a study's storage and a trial's id (to write
a trial's records in one transaction and to beat its heartbeat), the RDB storage behind the
cache, the RDB models, the heartbeat interfaces, and the name of the in-memory storage's
logger. Nothing else in adamtune touches an Optuna name that starts with an underscore;
``tests/search/test_optuna_private.py`` fails loudly when an Optuna release moves one of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

IN_MEMORY_LOGGER = "optuna.storages._in_memory"  # logs "A new study created in memory"


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes through (Optuna's cache over an RDB storage)."""
    storage: optuna.storages.BaseStorage = study._storage
    return storage


def backend_of(study: optuna.Study) -> Any:
    """The storage behind the cache: the ``RDBStorage`` itself, or the storage as it is."""
    return getattr(study._storage, "_backend", study._storage)


def trial_id(trial: optuna.Trial) -> int:
    """A trial's id in its storage (not its number in the study)."""
    return int(trial._trial_id)


def rdb_internals() -> tuple[Any, Any] | None:
    """Optuna's RDB models module and its session helper, or None should they move."""
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:  # pragma: no cover - a future Optuna that reorganised its internals
        return None
    return models, _create_scoped_session


def heartbeat_interfaces() -> tuple[type, Any]:
    """Optuna's heartbeat base class and its ``is_heartbeat_enabled``."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    return BaseHeartbeat, is_heartbeat_enabled
