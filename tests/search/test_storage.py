"""Storage URLs: redaction, precedence, checks, and opening without leaving files behind."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from adamtune.config.storage_url import (
    DEFAULT_STORAGE,
    ENV_VAR,
    check_url,
    redact,
    resolve_storage,
    sqlite_path,
)
from adamtune.errors import ConfigError, StudyNotFoundError
from adamtune.search.storage import open_storage


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://tuner:s3cret@db.example.com:5432/studies",
            "postgresql://tuner:***@db.example.com:5432/studies",
        ),
        (
            "postgresql+psycopg2://tuner:s3cret@db/studies",
            "postgresql+psycopg2://tuner:***@db/studies",
        ),
        ("mysql://root:hunter2@localhost/optuna", "mysql://root:***@localhost/optuna"),
        ("postgresql://tuner:pa/ss@db/studies", "postgresql://tuner:***@db/studies"),
    ],
)
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "s3cret" not in redact(url) and "hunter2" not in redact(url)


def test_redact_in_free_text() -> None:
    text = (
        "could not connect to postgresql://tuner:s3cret@db/studies "
        "(also tried mysql://root:hunter2@backup/optuna)"
    )
    assert redact(text) == (
        "could not connect to postgresql://tuner:***@db/studies "
        "(also tried mysql://root:***@backup/optuna)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///adamtune.db",
        "sqlite:////tmp/abs/studies.db",
        "sqlite:///:memory:",
        "postgresql://tuner@db/studies",
        "postgresql://db/studies",
        "no url here: a:b@c",
    ],
)
def test_redact_leaves_urls_without_password_alone(url: str) -> None:
    assert redact(url) == url


def test_resolve_storage_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert DEFAULT_STORAGE == "sqlite:///adamtune.db"
    assert resolve_storage(None) == DEFAULT_STORAGE
    assert resolve_storage(None, None) == DEFAULT_STORAGE


def test_resolve_storage_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    option, env, config = "sqlite:///option.db", "sqlite:///env.db", "sqlite:///config.db"
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_storage(None, config) == config
    monkeypatch.setenv(ENV_VAR, env)
    assert resolve_storage(None, config) == env
    assert resolve_storage(None) == env
    assert resolve_storage(option, config) == option


def test_empty_env_var_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_storage(None, "sqlite:///config.db") == "sqlite:///config.db"


def test_resolve_storage_checks_the_winner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "nonsense")
    with pytest.raises(ConfigError):
        resolve_storage(None, "sqlite:///config.db")
    assert resolve_storage("sqlite:///ok.db") == "sqlite:///ok.db"


@pytest.mark.parametrize("url", ["nonsense", "http://x", "adamtune.db", "file:///tmp/a.db", ""])
def test_check_url_rejects_non_databases(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_url(url)
    assert info.value.exit_code == 2
    assert "expected a database URL such as sqlite:///adamtune.db" in str(info.value)


def test_check_url_error_hides_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        check_url("postgres://tuner:s3cret@db/studies")  # 'postgres', not 'postgresql'
    assert "s3cret" not in str(info.value)
    assert "tuner:***@db" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///a.db",
        "postgresql://u@h/d",
        "postgresql+psycopg2://u@h/d",
        "mysql+pymysql://u@h/d",
    ],
)
def test_check_url_accepts_databases(url: str) -> None:
    check_url(url)


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:///adamtune.db") == Path("adamtune.db")
    assert sqlite_path("sqlite:////tmp/x.db") == Path("/tmp/x.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://u@h/d") is None


def test_open_missing_sqlite_with_must_exist_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(StudyNotFoundError) as info:
        open_storage(f"sqlite:///{path}", must_exist=True)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_open_missing_relative_sqlite_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StudyNotFoundError):
        open_storage(DEFAULT_STORAGE, must_exist=True)  # the test runs in tmp_path
    assert not (tmp_path / "adamtune.db").exists()


def test_open_storage_creates_and_reopens(storage_url: str, tmp_path: Path) -> None:
    storage = open_storage(storage_url)
    assert (tmp_path / "studies.db").exists()
    optuna.create_study(study_name="s1", storage=storage)
    again = open_storage(storage_url, must_exist=True)
    assert [s.study_name for s in again.get_all_studies()] == ["s1"]


def _drivers(monkeypatch: pytest.MonkeyPatch, *present: str) -> None:
    """Pretend that of the PostgreSQL drivers, only ``present`` are installed."""

    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name in ("psycopg", "psycopg2"):
            return object() if name in present else None
        return real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_postgresql_without_driver_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _drivers(monkeypatch)
    with pytest.raises(ConfigError) as info:
        open_storage("postgresql://tuner:s3cret@localhost:5432/studies")
    message = str(info.value)
    assert "psycopg or psycopg2" in message and "pip install 'psycopg[binary]'" in message
    assert "s3cret" not in message
    assert info.value.exit_code == 2


def test_postgresql_uses_whichever_driver_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from adamtune.search.storage import _with_driver

    url = "postgresql://tuner:pw@localhost/studies"
    _drivers(monkeypatch, "psycopg2")
    assert _with_driver(url) == "postgresql+psycopg2://tuner:pw@localhost/studies"
    _drivers(monkeypatch, "psycopg", "psycopg2")
    assert _with_driver(url) == url  # SQLAlchemy's own default, psycopg 3
    assert _with_driver("postgresql+psycopg2://h/db") == "postgresql+psycopg2://h/db"


@pytest.mark.parametrize("where", ["sqlite", "memory"])
def test_write_trial_sets_attrs_and_values_new_and_existing(where: str, storage_url: str) -> None:
    import math

    import optuna

    from adamtune.search.storage import write_trial

    storage = open_storage(storage_url) if where == "sqlite" else None
    study = optuna.create_study(storage=storage, study_name="w")
    trial = study.ask()
    trial.set_user_attr("stage", "lr")
    trial.report(0.5, 0)
    write_trial(
        study,
        trial._trial_id,
        {"stage": "betas", "curve": [1.0, None]},
        {0: 0.25, 1: 0.2, 2: math.inf},
    )
    frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert frozen.user_attrs == {"stage": "betas", "curve": [1.0, None]}
    assert frozen.intermediate_values == {0: 0.25, 1: 0.2, 2: math.inf}
    with pytest.raises(RuntimeError):  # a finished trial cannot be written to
        write_trial(study, trial._trial_id, {"late": 1})


@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        ("postgresql://u:pw-x9@host:notaport/db", 2, "not a usable database URL"),
        ("postgresql+nosuchdriver://u:pw-x9@127.0.0.1:9/db", 2, "not a usable database URL"),
    ],
)
def test_a_url_the_user_must_fix_is_a_usage_error(url: str, code: int, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_storage(url)
    assert info.value.exit_code == code and says in str(info.value)
    assert "pw-x9" not in str(info.value)


def test_a_worker_that_loses_the_race_to_create_the_tables_opens_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers started together on a new SQLite file all create Optuna's tables; SQLite tells
    the losers "table ... already exists" (an OperationalError, not PostgreSQL's duplicate
    key). Here another worker wins just before this one's first attempt."""
    import sqlalchemy.exc

    from adamtune.search import storage

    real, attempts = optuna.storages.RDBStorage, []

    def racing(url: str, **kwargs: object) -> optuna.storages.RDBStorage:
        attempts.append(url)
        if len(attempts) == 1:
            real(url, **kwargs).engine.dispose()  # the winner creates them
            lost = Exception("table alembic_version already exists")
            raise sqlalchemy.exc.OperationalError("CREATE TABLE alembic_version", {}, lost)
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(storage.time, "sleep", lambda _: None)
    opened = open_storage(f"sqlite:///{tmp_path / 'new.db'}")
    assert len(attempts) == 2 and opened.get_all_studies() == []


_OPEN_TOGETHER = """
import pathlib, sys, time
from adamtune.search.storage import open_storage
here = pathlib.Path(sys.argv[1])
(here / f"ready-{sys.argv[2]}").touch()
while not (here / "go").exists():
    time.sleep(0.001)
open_storage(f"sqlite:///{here / 'new.db'}")
"""


@pytest.mark.slow
def test_three_processes_opening_a_new_sqlite_file_together_all_succeed(tmp_path: Path) -> None:
    """The race above for real (before the fix, about one round in eight lost it)."""
    for round_ in range(4):
        here = tmp_path / str(round_)
        here.mkdir()
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_TOGETHER, str(here), str(n)],
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(3)
        ]
        while len(list(here.glob("ready-*"))) < 3:
            time.sleep(0.01)
        (here / "go").touch()
        for worker in workers:
            _, errors = worker.communicate(timeout=120)
            assert worker.returncode == 0, errors
