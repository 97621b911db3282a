"""The options of a search (``adamtune search``'s flags, ``adamtune.tune``'s keywords): one
model, checked once when it is made, for the CLI and the Python API alike. Light to import:
the CLI builds it (and starts ``--jobs`` helpers) before torch is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from adamtune.errors import OptionError

HEARTBEAT = 10  # seconds between a running trial's heartbeats
# What each option must be, by the name the Python API gives it.
_EXPECTED = {
    "storage": "a storage URL",
    "study": "a study name",
    "trials": "a whole number >= 1",
    "timeout": "a number of seconds > 0",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "fresh": "True or False",
    "batch": "a whole number >= 1 or 'auto'",
    "take_over": "True or False",
    "heartbeat": "a whole number of seconds >= 1",
    "threads": "a whole number >= 1",
}


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


_VALID = {
    "trials": _whole,
    "timeout": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
    "batch": lambda v: v == "auto" or _whole(v),
    "fresh": lambda v: isinstance(v, bool),
    "take_over": lambda v: isinstance(v, bool),
    "heartbeat": _whole,
    "threads": _whole,
}


def check_option(name: str, value: Any) -> None:
    """Raise ``OptionError`` when ``value`` is not what option ``name`` takes (None: unset)."""
    if value is not None and not _VALID.get(name, lambda v: isinstance(v, str))(value):
        raise OptionError(name, f"must be {_EXPECTED[name]} (got {value!r})")


@dataclass
class SearchOptions:
    storage: str
    study_name: str | None = None
    trials: int | None = None
    timeout: float | None = None
    device: str | None = None
    fresh: bool = False
    batch: int | Literal["auto"] | None = None  # overrides search.batch
    take_over: bool = False  # fail the running trials of other workers (known to be gone)
    heartbeat: int = HEARTBEAT  # seconds; a trial silent for three is taken for dead
    poll: float = 0.05  # seconds between looks while waiting for other workers' trials
    threads: int | None = None  # torch CPU threads (None: $ADAMTUNE_THREADS, else the cores
    # other processes leave free: train/threads.py)

    def __post_init__(self) -> None:
        for name, value in self.by_api_name().items():
            check_option(name, value)

    def by_api_name(self) -> dict[str, Any]:
        """The options a user sets, by the names the Python API gives them."""
        return {
            "storage": self.storage,
            "study": self.study_name,
            "trials": self.trials,
            "timeout": self.timeout,
            "device": self.device,
            "fresh": self.fresh,
            "batch": self.batch,
            "take_over": self.take_over,
            "heartbeat": self.heartbeat,
            "threads": self.threads,
        }
