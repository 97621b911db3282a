"""Storage URLs: the default, the environment variable, what makes a URL usable, and
hiding the password a URL may carry (it never appears in a message unredacted)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from adamtune.errors import ConfigError

DEFAULT_STORAGE = "sqlite:///adamtune.db"
ENV_VAR = "ADAMTUNE_STORAGE"
_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
# scheme://user:password@ — user and password as URLs allow them (no spaces, quotes or '@').
_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s'\"]*:)(?P<secret>[^@\s'\"]*)(?P<tail>@)"
)


# key=value passwords: a libpq DSN (``password=x``) or a URL query (``?password=x``).
_KEYED = re.compile(r"(?P<head>\bpassword=)(?P<secret>[^&\s'\"]+)", re.IGNORECASE)
# The passwords of the storage URLs this process has seen, as typed and as decoded: a
# password the patterns cannot delimit (a quote, a space, a raw '@') is still hidden.
_SECRETS: set[str] = set()


def remember_secrets(url: str) -> None:
    """Record the password(s) in ``url`` so that ``redact`` hides them wherever they appear."""
    from urllib.parse import quote, unquote

    found = {m.group("secret") for m in _KEYED.finditer(url)}
    raw = re.match(r"^[A-Za-z][\w+.-]*://[^:/@]*:(.*)@[^@]*$", url, re.DOTALL)
    if raw:
        found.add(raw.group(1))
    for secret in list(found):
        found.update({unquote(secret), quote(unquote(secret), safe="")})
    _SECRETS.update(s for s in found if len(s) >= 3)  # a very short one would mask too much


def redact(text: str) -> str:
    """Hide the password of any URL in ``text``: ``postgresql://u:***@host/db``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _KEYED.sub(r"\g<head>***", text)
    return _PASSWORD.sub(r"\g<head>***\g<tail>", text)


def resolve_storage(option: str | None, config_value: str | None = None) -> str:
    """--storage, then $ADAMTUNE_STORAGE, then search.storage, then sqlite:///adamtune.db."""
    url = option or os.environ.get(ENV_VAR) or config_value or DEFAULT_STORAGE
    check_url(url)
    return url


def storage_problem(url: str) -> str | None:
    """What is wrong with a storage URL, or None."""
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in _SCHEMES:
        return (
            f"expected a database URL such as sqlite:///adamtune.db or "
            f"postgresql://user@host/db (got {redact(url)!r})"
        )
    if scheme == "sqlite" and sqlite_path(url) is None:
        return (
            f"an in-memory database ({url!r}) would lose the study when adamtune exits; "
            f"give a file, e.g. sqlite:///adamtune.db"
        )
    return None


def check_url(url: str) -> None:
    remember_secrets(url)
    problem = storage_problem(url)
    if problem:
        raise ConfigError(f"storage: {problem}")


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite URL (None for other databases or in-memory sqlite)."""
    found = re.match(r"sqlite(\+\w+)?:///", url)  # sqlite+pysqlite:/// too
    if found is None:
        return None
    path = url[found.end() :].partition("?")[0]
    return Path(path) if path and path != ":memory:" else None
