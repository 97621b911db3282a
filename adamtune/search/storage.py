"""Where studies live: opening, checking and listing Optuna storages, and writing a trial's
records (``storage_url`` resolves and checks the URLs).

A storage URL may carry a password; it never leaves this module unredacted in a message.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adamtune.config.storage_url import redact, remember_secrets, sqlite_path
from adamtune.errors import ConfigError, StorageError, StudyNotFoundError, first_line
from adamtune.search.optuna_private import backend_of, rdb_internals, storage_of

if TYPE_CHECKING:
    import optuna

SQLITE_TIMEOUT = 30  # seconds
# For a URL without "+driver": the modules that can serve it, in SQLAlchemy's order of
# preference (SQLAlchemy 2.1 defaults postgresql:// to psycopg 3), and what to install.
_DRIVERS = {
    "postgresql": (("psycopg", "psycopg2"), "pip install 'psycopg[binary]' (or psycopg2-binary)"),
    "mysql": (("MySQLdb", "pymysql"), "pip install mysqlclient (or PyMySQL)"),
}


def _with_driver(url: str) -> str:
    """``url`` naming the installed driver when it names none (``postgresql+psycopg2://``
    when only psycopg2 is there); a clear error when no driver for it is installed."""
    import importlib.util

    remember_secrets(url)
    scheme, rest = url.split("://", 1)
    if scheme not in _DRIVERS:
        return url
    modules, install = _DRIVERS[scheme]
    found = [m for m in modules if importlib.util.find_spec(m) is not None]
    if not found:
        raise ConfigError(
            f"storage {redact(url)}: no database driver for {scheme} is installed "
            f"({' or '.join(modules)}): {install}"
        )
    return url if found[0] == modules[0] else f"{scheme}+{found[0]}://{rest}"


def open_storage(
    url: str, *, must_exist: bool = False, **options: Any
) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage. ``must_exist`` refuses to create a new SQLite file, so that
    read-only commands (best, trials) never leave an empty database behind; ``options`` go to
    ``RDBStorage`` (a searching worker's heartbeat)."""
    import sqlalchemy.exc

    path = sqlite_path(url)
    if path is not None:
        if must_exist and not path.exists():
            raise StudyNotFoundError(f"no study found: {path} does not exist (storage {url})")
        if not must_exist and not os.access(path.parent.resolve(), os.W_OK):
            raise StorageError(f"storage {url}: cannot write in {path.parent.resolve()}")
        if not must_exist:
            _check_sqlite(path, url)
    engine_kwargs = {"connect_args": {"timeout": _sqlite_wait(url)}} if path is not None else {}
    try:
        storage = _rdb_storage(_with_driver(url), engine_kwargs, options)
        if path is not None and not must_exist:
            _fast_sqlite(storage)
        return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        # A URL that cannot be parsed, or names a driver that is not installed, is the user's
        # to fix (exit 2); a database that does not answer is a runtime failure (exit 1).
        if isinstance(exc, (ValueError, ImportError, sqlalchemy.exc.ArgumentError)) or (
            "Failed to import DB access module" in str(exc)
        ):
            raise ConfigError(
                f"storage {redact(url)}: not a usable database URL: {redact(first_line(exc))}"
            ) from None
        raise storage_failure(url, exc, opening=True) from None


def _sqlite_wait(url: str) -> float:
    """How long to wait for another process's lock on a SQLite file: 30 s, unless the URL
    says (``sqlite:///adamtune.db?timeout=120``)."""
    from urllib.parse import parse_qs

    given = parse_qs(url.partition("?")[2]).get("timeout", [str(SQLITE_TIMEOUT)])[-1]
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise ConfigError(f"storage {redact(url)}: timeout must be seconds >= 0 (got {given!r})")
    return seconds


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a database failing under a command raises: the driver's error, or Optuna's
    wrapper of it (raised ``from`` it) for any error inside one of its sessions."""
    import optuna
    import sqlalchemy.exc

    return (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError)


def storage_failure(url: str | None, exc: BaseException, *, opening: bool = False) -> StorageError:
    """The one line for a database that failed under a command: locked by another process
    past the wait, a SQLite file that is not (or no longer) a database, or no answer."""
    cause = exc.__cause__ or exc  # Optuna's StorageInternalError wraps the driver's error
    text, path = str(cause), sqlite_path(url) if url else None
    where = f"storage {redact(url)}" if url else "storage"
    if "database is locked" in text:
        wait = f"{_sqlite_wait(url):g} s" if url else "the wait"
        return StorageError(
            f"{where}: another process held the database locked for more than {wait} (set "
            f"the wait with ?timeout=SECONDS); finished trials are kept: run the command "
            f"again when it is free"
        )
    if "not a database" in text or "malformed" in text:
        name = f"{path} is" if path is not None else "the database file is"
        return StorageError(
            f"{where}: {name} not a readable SQLite database ({redact(first_line(cause))}); it is "
            f"left as it is: restore it from a copy, or give another --storage"
        )
    failed = "is unreachable" if opening else "failed"
    return StorageError(f"{where} {failed}: {redact(first_line(cause))}")


def _check_sqlite(path: Path, url: str) -> None:
    """Before a search writes to an existing SQLite file: is it a sound database? A damaged
    one is refused whole, before anything is written to it."""
    import contextlib
    import sqlite3

    if not path.is_file():
        return
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=_sqlite_wait(url))) as db:
            found = db.execute("PRAGMA quick_check(1)").fetchone()
    except sqlite3.DatabaseError as exc:
        if any(sign in str(exc) for sign in ("not a database", "malformed", "locked")):
            raise storage_failure(url, exc) from None
        return  # cannot look read-only (a write-ahead log to recover, say): Optuna opens it
    if found and found[0] != "ok":
        damaged = sqlite3.DatabaseError(f"database disk image is malformed: {found[0]}")
        raise storage_failure(url, damaged) from None


def _rdb_storage(
    url: str, engine_kwargs: dict[str, Any], options: dict[str, Any]
) -> optuna.storages.RDBStorage:
    import warnings

    import optuna
    import sqlalchemy.exc

    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # the heartbeat is an "experimental" argument
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **options)
        except sqlalchemy.exc.DBAPIError as exc:
            # Workers started together on an empty database all create Optuna's tables; the
            # losers of that race (PostgreSQL: a duplicate key; SQLite: "table ... already
            # exists") find them there when they look again.
            lost_race = isinstance(
                exc, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)
            ) or "already exists" in str(exc)
            if attempt == 2 or not lost_race:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def _fast_sqlite(storage: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging with ``synchronous=NORMAL``: a commit no longer waits for the disk.

    Each trial makes a few dozen small commits (a report per epoch, its attributes); with
    SQLite's default journal every one of them is an fsync. In WAL mode a commit survives the
    process being killed (kill -9, Ctrl-C); only a power cut or OS crash may roll back the
    last few, and the file stays consistent. WAL also lets readers (optuna-dashboard,
    ``adamtune best``) read while a search writes.
    """
    from sqlalchemy import event

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # connections opened before the listener get replaced


def release_storage(storage: optuna.storages.BaseStorage) -> None:
    """Put a SQLite file back in its ordinary journal mode after a search, so it can be read
    from a read-only place with no ``-wal``/``-shm`` files beside it. Best effort: while
    another process (a dashboard, a second worker) has it open, it stays in WAL mode."""
    import sqlalchemy.exc

    engine = getattr(storage, "engine", None)
    if engine is None or engine.url.get_backend_name() != "sqlite":
        return
    engine.dispose()
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=DELETE")
    except sqlalchemy.exc.SQLAlchemyError:
        pass
    engine.dispose()


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def latest_study(storage: optuna.storages.BaseStorage, url: str) -> str:
    """The study whose newest trial started or finished last (``best`` with no argument)."""
    newest: tuple[float, str] | None = None
    for frozen in storage.get_all_studies():
        stamps = [
            t.datetime_complete or t.datetime_start
            for t in storage.get_all_trials(
                storage.get_study_id_from_name(frozen.study_name), deepcopy=False
            )
        ]
        stamp = max((s.timestamp() for s in stamps if s is not None), default=0.0)
        if newest is None or stamp > newest[0]:
            newest = (stamp, frozen.study_name)
    if newest is None:
        raise StudyNotFoundError(f"no study found in {redact(url)}")
    return newest[1]


def load_study(name: str, storage: optuna.storages.BaseStorage, url: str) -> optuna.Study:
    import optuna

    names = study_names(storage)
    if name not in names:
        known = f"; studies there: {', '.join(names)}" if names else "; it holds no study"
        raise StudyNotFoundError(f"no study named {name!r} in {redact(url)}{known}")
    return optuna.load_study(study_name=name, storage=storage)


def write_trial(
    study: optuna.Study,
    trial_id: int,
    user_attrs: dict[str, Any],
    intermediate: dict[int, float] | None = None,
) -> None:
    """Set a running trial's user attributes and intermediate values in one transaction.

    Optuna commits each ``set_user_attr`` and ``report`` on its own, and each first reads the
    trial and looks the row up: ~30 commits and ~90 queries for a 20-epoch trial, a fifth of a
    batched search's wall time on SQLite (benchmarks/README.md). On a relational storage the
    rows are inserted together through Optuna's own models (existing ones updated through its
    own helper); on any other storage, or should those internals move, the public calls do it.
    """
    intermediate = intermediate or {}
    if not _write_rdb(backend_of(study), trial_id, user_attrs, intermediate):
        storage = storage_of(study)
        for key, value in user_attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        for step, value in intermediate.items():
            storage.set_trial_intermediate_value(trial_id, step, value)


def _write_rdb(
    backend: Any, trial_id: int, user_attrs: dict[str, Any], intermediate: dict[int, float]
) -> bool:
    """The one-transaction write; False when ``backend`` is not an RDB storage we know."""
    import json

    from optuna.storages import RDBStorage

    internals = rdb_internals()
    if internals is None:  # pragma: no cover - a future Optuna that reorganised its internals
        return False
    models, _create_scoped_session = internals
    needed = ("_set_trial_attr_without_commit", "_set_trial_intermediate_value_without_commit")
    if not isinstance(backend, RDBStorage) or not all(hasattr(backend, n) for n in needed):
        return False
    attr_model, value_model = models.TrialUserAttributeModel, models.TrialIntermediateValueModel
    with _create_scoped_session(backend.scoped_session) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        backend.check_trial_is_updatable(trial_id, trial.state)
        keys = {k for (k,) in session.query(attr_model.key).filter(attr_model.trial_id == trial_id)}
        steps = {
            s for (s,) in session.query(value_model.step).filter(value_model.trial_id == trial_id)
        }
        for key, value in user_attrs.items():
            if key in keys:
                backend._set_trial_attr_without_commit(session, attr_model, trial_id, key, value)
            else:
                session.add(attr_model(trial_id=trial_id, key=key, value_json=json.dumps(value)))
        for step, value in intermediate.items():
            if step in steps:
                backend._set_trial_intermediate_value_without_commit(session, trial_id, step, value)
            else:
                stored, kind = value_model.intermediate_value_to_stored_repr(value)
                session.add(
                    value_model(
                        trial_id=trial_id,
                        step=step,
                        intermediate_value=stored,
                        intermediate_value_type=kind,
                    )
                )
    return True
