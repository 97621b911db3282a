"""One exception family for the whole core; the CLI maps each to an exit code."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (or its type's name, when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class AdamtuneError(Exception):
    """Base of every error adamtune raises on purpose. ``exit_code``: the command's."""

    exit_code = 1


class ConfigError(AdamtuneError):
    """Bad config or bad usage: the user can fix it by editing their input (exit 2).

    ``problems`` holds one line per problem, each already naming file, line and key path.
    """

    exit_code = 2

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class StudyNotFoundError(AdamtuneError):
    """The storage holds no study by that name (exit 2: the user named the wrong thing)."""

    exit_code = 2


class StorageError(AdamtuneError):
    """The storage cannot be reached or used (exit 1)."""


class SearchFailedError(AdamtuneError):
    """The search ran but produced nothing usable, e.g. every trial failed (exit 1)."""


class NoCompletedTrialError(AdamtuneError):
    """A study exists but has no completed trial to report (exit 1)."""
