"""Search progress: a live rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adamtune.cli.render import lr_range_line, plan_text, say, trial_line
from adamtune.search import SearchObserver, SearchStart
from adamtune.search.rows import TrialRow
from adamtune.train.params import AdamParams


class PlainProgress(SearchObserver):
    """One line per trial on stderr: readable in CI logs and when piped."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.waited: str | None = None  # what this worker waits for, said once

    def study_deleted(self, study: str, trials: int, storage: str) -> None:
        say(self.console, f"--fresh: deleted study {study} ({trials} trials) from {storage}")

    def search_started(self, start: SearchStart) -> None:
        plan = plan_text(start.plan, start.confirm)
        where = f"study {start.study} in {start.storage}"
        if start.done >= start.total:
            say(
                self.console,
                f"{where}: {start.done} trials done, budget {start.total}: "
                f"nothing to run (raise --trials to extend it)",
            )
        else:
            say(
                self.console,
                f"{where}: {start.done} of {start.total} trials done; plan: defaults 1, {plan}",
            )
        say(self.console, start.task)
        if start.lr_range is not None:
            say(self.console, lr_range_line(start.lr_range))
        if start.batch > 1:
            say(self.console, batch_line(start))
        if start.threads:
            say(self.console, f"torch CPU threads: {start.threads}")
        if start.batch_note:
            say(self.console, start.batch_note)

    def range_test_started(self, seeds: int) -> None:
        say(self.console, f"lr: auto: running the LR range test ({seeds} seeds) first")

    def trial_finished(self, row: TrialRow, best: float | None) -> None:
        say(self.console, trial_line(row, best))
        self.waited = None

    def waiting(self, message: str) -> None:
        if message != self.waited:  # once per wait, not on every look
            say(self.console, message)
            self.waited = message


class LiveProgress(PlainProgress):
    """Bars for trials and for the epochs of the running trial, with stage and best so far."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.trials_bar = self.progress.add_task("trials", total=1, info="")
        self.epochs_bar = self.progress.add_task("epochs", total=1, info="")
        self.best: float | None = None
        self.running: list[int] = []

    def search_started(self, start: SearchStart) -> None:
        super().search_started(start)
        self.progress.update(self.trials_bar, total=start.total, completed=start.done)
        self.progress.start()

    def trial_started(self, number: int, stage: str, params: AdamParams) -> None:
        best = f"best {self.best:.4g}" if self.best is not None else ""
        self.running.append(number)
        self.progress.update(self.trials_bar, info=f"stage {stage}  {best}")
        self.progress.update(
            self.epochs_bar, completed=0, info=f"{self._label()}  lr {params.lr:.3g}"
        )

    def _label(self) -> str:
        if len(self.running) > 1:  # a batch: its trials train together, epoch by epoch
            return f"trials {self.running[0]}-{self.running[-1]}"
        return f"trial {self.running[0]}" if self.running else ""

    def epoch_finished(self, number: int, epoch: int, epochs: int, value: float) -> None:
        info = f"trial {number}  val {value:.4g}"
        if len(self.running) > 1:
            info = f"{self._label()}  ({len(self.running)} running)"
        self.progress.update(self.epochs_bar, total=epochs, completed=epoch + 1, info=info)

    def trial_finished(self, row: TrialRow, best: float | None) -> None:
        self.best = best
        if row.number in self.running:
            self.running.remove(row.number)
        say(self.progress.console, trial_line(row, best))
        self.waited = None
        if row.state not in ("oom", "killed", "interrupted"):  # drawn again: not counted
            self.progress.advance(self.trials_bar)

    def waiting(self, message: str) -> None:
        if message != self.waited:
            self.progress.update(self.trials_bar, info=message)
            self.waited = message

    def stop(self) -> None:
        self.progress.stop()


def batch_line(start: SearchStart) -> str:
    """How many trials train together: the widest round the plan holds, not the batch size
    (a 12-trial study with --batch 32 trains at most its largest stage at once)."""
    widths = [s.trials + (1 if i == 0 else 0) for i, s in enumerate(start.plan)]
    widths.append(start.confirm.trials)
    widest = min(start.batch, max(widths))
    return f"up to {widest} trials trained together per batch (--batch {start.batch})"
