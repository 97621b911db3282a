"""The ``adamtune`` command: a thin layer that parses options, calls the library, renders
results, and turns errors into one line and an exit code (0 ok, 1 runtime, 2 usage/config).

torch and optuna are imported inside commands, so ``--help`` stays fast. Last in the flow:
it may import every package (config, task, train, search, insight) and ``api``.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from adamtune import __version__
from adamtune.cli.base import (
    ConfigArg,
    CpuThreadsOpt,
    DebugOpt,
    DeviceOpt,
    QuietOpt,
    StorageOpt,
    StudyOpt,
    TextFormat,
    TextFormatOpt,
    _batch_option,
    _errors,
    _quiet_optuna,
    _settings,
    app,
    err,
    out,
)
from adamtune.cli.render import say
from adamtune.cli.search_options import (
    BatchOpt,
    FreshOpt,
    HeartbeatOpt,
    JobsOpt,
    JsonPathOpt,
    SummaryOpt,
    TakeOverOpt,
    ThreadsOpt,
    TimeoutOpt,
    TrialsOpt,
)

RESUME = "interrupted: finished trials are kept; run the same command to resume"


@app.command(rich_help_panel="Tune")
def search(
    config: ConfigArg,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    device: DeviceOpt = None,
    trials: TrialsOpt = None,
    timeout: TimeoutOpt = None,
    fresh: FreshOpt = False,
    batch: BatchOpt = None,
    json_path: JsonPathOpt = None,
    jobs: JobsOpt = 1,
    threads: ThreadsOpt = None,
    heartbeat: HeartbeatOpt = 10,
    take_over: TakeOverOpt = False,
    summary: SummaryOpt = True,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run (or resume) the study a config describes.

    Example: adamtune search configs/digits-mlp.yaml --trials 30 --jobs 2

    Any number of searches on one study (here with --jobs, or on other machines with the
    same --storage) share its budget and stages.
    """
    with _errors(debug, RESUME):
        from adamtune.config.storage_url import resolve_storage
        from adamtune.search.local_workers import search_with_helpers, threads_per_worker
        from adamtune.search.options import SearchOptions

        batch_k = _batch_option(batch)
        settings = _settings(config)
        url = resolve_storage(storage, settings.config.search.storage)
        threads = threads or (threads_per_worker(jobs) if jobs > 1 else None)
        helper_options = {
            "study": study,
            "device": device,
            "trials": trials,
            "timeout": timeout,
            "batch": batch,
            "threads": threads,
            "heartbeat": heartbeat,
        }
        from adamtune.cli.progress import LiveProgress, PlainProgress

        _quiet_optuna()
        options = SearchOptions(
            storage=url,
            study_name=study,
            trials=trials,
            timeout=timeout,
            device=device,
            fresh=fresh,
            batch=batch_k,
            take_over=take_over,
            heartbeat=heartbeat,
            threads=threads,
        )
        observer = LiveProgress(err) if not quiet and err.is_terminal else PlainProgress(err)
        began = time.monotonic()
        try:
            done = search_with_helpers(settings, options, observer, jobs, config, helper_options)
        finally:
            if isinstance(observer, LiveProgress):
                observer.stop()
        for problem in done.problems:
            err.print(f"warning: {problem}", markup=False, highlight=False)
        if summary:
            _summary(done, time.monotonic() - began, json_path)


def _summary(done: Any, seconds: float, json_path: Path | None) -> None:
    """The end of a search: its winner, and the CI outputs."""
    from adamtune.cli.render import print_search_summary
    from adamtune.errors import NoCompletedTrialError
    from adamtune.insight.results import best_result

    run = done.run
    try:
        best = best_result(done.study, run.storage)
    except NoCompletedTrialError:
        if run.stopped_by != "timeout":
            raise
        # Only possible beside other workers: this one timed out waiting for their first.
        say(
            out,
            f"study {run.study}: --timeout came before any trial finished "
            f"({len(run.ran)} run now); run the same command to go on",
        )
        return
    # The files first: a reader of stdout that goes away (| head) must not cost --json.
    _ci_outputs(run, best, seconds, json_path)
    print_search_summary(out, best, len(run.ran), run.stopped_by)


def _ci_outputs(run: Any, best: Any, seconds: float, json_path: Path | None) -> None:
    """``--json PATH`` and, on GitHub Actions, the step summary."""
    from adamtune.cli.render import gain_line
    from adamtune.errors import ConfigError
    from adamtune.insight.ci import append_step_summary, search_summary, step_summary
    from adamtune.insight.formats import to_json

    if json_path is not None:
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(to_json(search_summary(run, best, seconds)) + "\n")
        except OSError as exc:
            raise ConfigError(f"--json: cannot write {json_path}: {exc.strerror or exc}") from None
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        append_step_summary(summary_file, step_summary(best, gain_line(best), run.stopped_by))


@app.command("lr-find", rich_help_panel="Tune")
def lr_find(
    config: ConfigArg,
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, help="Repeat the test on this many seeds.")
    ] = 1,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also write the curves as a PNG here.")
    ] = None,
    start: Annotated[float, typer.Option("--start", min=0.0, help="First learning rate.")] = 1e-7,
    end: Annotated[float, typer.Option("--end", min=0.0, help="Last learning rate.")] = 10.0,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Learning rates tried.")] = 100,
    format: TextFormatOpt = TextFormat.table,
    device: DeviceOpt = None,
    threads: CpuThreadsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """LR range test: raise Adam's lr exponentially, one step per batch, until the loss blows up.

    Example: adamtune lr-find configs/digits-mlp.yaml --seeds 3 --plot lr-find.png
    """
    with _errors(debug):
        from adamtune.errors import ConfigError

        if not 0 < start < end:
            raise ConfigError(f"--start/--end: need 0 < start < end (got {start:g}, {end:g})")
        settings = _settings(config)
        from adamtune.insight.formats import range_test_data, to_json
        from adamtune.task.build import build_task
        from adamtune.train.lr_find import run_range_test, summarise
        from adamtune.train.sizing import use_threads

        task = build_task(settings, device)
        use_threads(task, threads)
        curves = run_range_test(task, seeds, start, end, steps)
        summary = summarise(curves)
        if plot is not None:
            from adamtune.insight.plots import range_test

            lines = [(c.lrs, c.smoothed) for c in curves]
            picture = range_test(lines, {s.name: s.median for s in summary})
            try:
                plot.write_bytes(picture)
            except OSError as exc:
                raise ConfigError(f"--plot: cannot write {plot}: {exc.strerror or exc}") from None
        if format is TextFormat.json:
            print(to_json(range_test_data(curves, summary)))
            return
        from adamtune.cli.render import range_test_table, text_plot

        out.print(range_test_table(summary, f"{settings.study_name}: LR range test"))
        say(out, text_plot(curves[0]))
        if plot is not None:
            say(out, f"plot written to {plot}")


@app.command(rich_help_panel="Set up")
def validate(
    config: ConfigArg,
    device: DeviceOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Check a config without training: keys, values, data and model (exit 0 or 2).

    Example: adamtune validate configs/digits-mlp.yaml
    """
    with _errors(debug):
        settings = _settings(config)
        from adamtune.cli.render import plan_text
        from adamtune.search.plan import confirmation, make_plan
        from adamtune.task.build import build_task
        from adamtune.train.engine import check_one_batch

        task = build_task(settings, device)
        check_one_batch(task)
        search_cfg = settings.config.search
        total = search_cfg.trials
        plan = plan_text(make_plan(search_cfg, total), confirmation(search_cfg, total))
        checked = "trained on" if task.step is None else "ran forward on"
        say(out, f"{config}: valid (the model {checked} one batch)")
        say(out, f"study {settings.study_name}: {task.describe()}")
        say(out, f"{search_cfg.strategy} search, {total} trials: defaults 1, {plan}")


@app.command(rich_help_panel="Set up")
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path(
        "adamtune.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Write a commented starter config (it validates and runs as it is).

    Example: adamtune init my-study.yaml && adamtune search my-study.yaml
    """
    with _errors(debug):
        from importlib.resources import files

        from adamtune.errors import ConfigError

        if path.exists() and not force:
            raise ConfigError(f"{path} already exists; use --force to overwrite it")
        text = files("adamtune").joinpath("starter.yaml").read_text(encoding="utf-8")
        name = json.dumps(path.stem)  # quoted: a stem such as 2024 or true stays a name
        text = text.replace("name: my-study ", f"name: {name} ".ljust(len("name: my-study ")))
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write ({exc.strerror})") from None
        say(out, f"wrote {path}; next: adamtune search {path}")


# Registered after this module's commands, so that --help lists tuning first.
from adamtune.cli import read, insight  # noqa: E402, F401, I001


def _version(value: bool) -> None:
    if value:
        print(f"adamtune {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Find the best torch.optim.Adam hyperparameters for your own model and data."""


def main() -> None:
    # torch's OpenMP threads spin while they wait for each other; beside one busy process on 2
    # cores, spinning threads took turns with it and a 10 s search took 97 s. Where the search
    # follows the machine's load (train/threads.py), it drops to one thread beside a
    # neighbour, and spinning is what makes two threads pay when the machine is idle (passive
    # waiting made two threads slower than one). Where the load cannot be read, threads
    # sleep while they wait. Read once, when torch loads: here, before any command imports
    # it. A value the user set is kept.
    if not os.path.exists("/proc/stat"):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        sys.exit(app())
    finally:
        # What is left is freed by the exit anyway; frozen, the interpreter's last collections
        # skip it (with torch loaded they took ~1 s of every search's wall time).
        gc.freeze()
