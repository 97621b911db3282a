"""What a search tells its caller: how it starts (``SearchStart``), the progress hooks it
calls (``SearchObserver``), and what one run did (``SearchRun``). Light to import: the CLI's
progress display subclasses the hooks before torch is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from adamtune.search.lr_auto import AutoRange
from adamtune.search.plan import Confirmation, Stage
from adamtune.search.rows import TrialRow
from adamtune.train.params import AdamParams


@dataclass
class SearchStart:
    study: str
    storage: str  # redacted
    task: str
    plan: list[Stage]
    total: int
    done: int  # trials already in the study that count toward its budget
    batch: int = 1  # trials trained together
    batch_note: str | None = None  # why a batch was asked for and not used
    confirm: Confirmation = field(default_factory=Confirmation)  # the final re-runs
    lr_range: AutoRange | None = None  # the range ``lr: auto`` searches
    threads: str | None = None  # the CPU threads that train (None on a GPU): threads.described

    @property
    def seeds(self) -> int:
        """Seed slots behind a confirmed value (1: no confirmation)."""
        return self.confirm.slots + 1


class SearchObserver:
    """Progress hooks; the CLI renders them, library users may subclass. All are no-ops."""

    def range_test_started(self, seeds: int) -> None: ...

    def study_deleted(self, study: str, trials: int, storage: str) -> None:
        """A fresh start (``fresh``) deleted ``study`` and its ``trials`` trials from
        ``storage`` (redacted)."""

    def search_started(self, start: SearchStart) -> None: ...

    def trial_started(self, number: int, stage: str, params: AdamParams) -> None: ...

    def epoch_finished(self, number: int, epoch: int, epochs: int, value: float) -> None: ...

    def trial_finished(self, row: TrialRow, best: float | None) -> None: ...

    def waiting(self, message: str) -> None:
        """Called on every look while trials running elsewhere hold this worker up."""


@dataclass
class SearchRun:
    """What one call of ``run_search`` did."""

    study: str
    storage: str  # redacted
    started: SearchStart
    ran: list[TrialRow] = field(default_factory=list)
    stopped_by: str = "budget"  # budget | timeout | exhausted (every choice tried) | too_few
