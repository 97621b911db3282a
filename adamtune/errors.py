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


class OptionError(ConfigError):
    """A bad option of a command or of the Python API. ``option`` is its name as the API
    spells it (``take_over``); the message reads ``take_over: ...``, and the CLI shows the
    flag instead (``--take-over: ...``): the core speaks its own terms."""

    def __init__(self, option: str, problem: str) -> None:
        self.option, self.problem = option, problem
        super().__init__(f"{option}: {problem}")

    def as_flag(self) -> str:
        return f"--{self.option.replace('_', '-')}: {self.problem}"


class StudyNotFoundError(AdamtuneError):
    """The storage holds no study by that name (exit 2: the user named the wrong thing)."""

    exit_code = 2


class StorageError(AdamtuneError):
    """The storage cannot be reached or used (exit 1)."""


class SearchFailedError(AdamtuneError):
    """The search ran but produced nothing usable, e.g. every trial failed (exit 1)."""


class NoCompletedTrialError(AdamtuneError):
    """A study exists but has no completed trial to report (exit 1)."""
