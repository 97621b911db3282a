"""Search progress: a live rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adamtune.cli.render import say, trial_line
from adamtune.results import TrialRow
from adamtune.search import SearchObserver, SearchStart
from adamtune.space import AdamParams


class PlainProgress(SearchObserver):
    """One line per trial on stderr: readable in CI logs and when piped."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def search_started(self, start: SearchStart) -> None:
        plan = ", ".join(f"{s.name} {s.trials}" for s in start.plan)
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

    def trial_finished(self, row: TrialRow, best: float | None) -> None:
        say(self.console, trial_line(row, best))


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

    def search_started(self, start: SearchStart) -> None:
        super().search_started(start)
        self.progress.update(self.trials_bar, total=start.total, completed=start.done)
        self.progress.start()

    def trial_started(self, number: int, stage: str, params: AdamParams) -> None:
        best = f"best {self.best:.4g}" if self.best is not None else ""
        self.progress.update(self.trials_bar, info=f"stage {stage}  {best}")
        self.progress.update(
            self.epochs_bar, completed=0, info=f"trial {number}  lr {params.lr:.3g}"
        )

    def epoch_finished(self, number: int, epoch: int, epochs: int, value: float) -> None:
        self.progress.update(
            self.epochs_bar,
            total=epochs,
            completed=epoch + 1,
            info=f"trial {number}  val {value:.4g}",
        )

    def trial_finished(self, row: TrialRow, best: float | None) -> None:
        self.best = best
        say(self.progress.console, trial_line(row, best))
        if row.state not in ("killed", "interrupted"):
            self.progress.advance(self.trials_bar)

    def stop(self) -> None:
        self.progress.stop()
