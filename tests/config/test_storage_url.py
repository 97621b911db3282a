"""Storage URLs: the default and the environment, what is refused, and hidden passwords."""

from __future__ import annotations

import pytest

from adamtune.config.storage_url import (
    DEFAULT_STORAGE,
    ENV_VAR,
    redact,
    resolve_storage,
    sqlite_path,
    storage_problem,
)
from adamtune.errors import ConfigError


def test_the_option_then_the_environment_then_the_config_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_storage(None) == DEFAULT_STORAGE
    assert resolve_storage(None, "sqlite:///c.db") == "sqlite:///c.db"
    monkeypatch.setenv(ENV_VAR, "sqlite:///e.db")
    assert resolve_storage(None, "sqlite:///c.db") == "sqlite:///e.db"
    assert resolve_storage("sqlite:///o.db", "sqlite:///c.db") == "sqlite:///o.db"


def test_an_unusable_url_is_refused_in_one_line() -> None:
    assert storage_problem("sqlite:///:memory:") is not None
    assert "expected a database URL" in (storage_problem("adamtune.db") or "")
    with pytest.raises(ConfigError, match="^storage: "):
        resolve_storage("ftp://x/y")
    assert sqlite_path("sqlite+pysqlite:///a/b.db?timeout=3").as_posix() == "a/b.db"  # type: ignore[union-attr]


def test_a_password_never_shows() -> None:
    url = "postgresql://me:s3cret@db.example/studies"
    assert redact(f"cannot reach {url}") == "cannot reach postgresql://me:***@db.example/studies"
    assert "s3cret" not in redact("host=db password=s3cret dbname=x")
