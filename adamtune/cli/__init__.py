"""The ``adamtune`` command: a thin layer that parses options, calls the library, renders
results, and turns errors into one line and an exit code (0 ok, 1 runtime, 2 usage/config).

torch and optuna are imported inside commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from adamtune import __version__
from adamtune.cli.render import say
from adamtune.errors import AdamtuneError

app = typer.Typer(
    name="adamtune",
    help="Find the best torch.optim.Adam hyperparameters for your own model and data.\n\n"
    "Example: adamtune search configs/digits-mlp.yaml && adamtune best",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Results on stdout, diagnostics and progress on stderr. Piped output gets room for tables.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class Format(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"
    torch = "torch"


ConfigArg = Annotated[Path, typer.Argument(help="The study's YAML config.", show_default=False)]
OptConfigArg = Annotated[
    Path | None,
    typer.Argument(
        help="The study's YAML config (default: the most recently updated study).",
        show_default=False,
    ),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Optuna storage URL (env ADAMTUNE_STORAGE; default sqlite:///adamtune.db).",
        show_default=False,
    ),
]
StudyOpt = Annotated[
    str | None,
    typer.Option("--study", help="Study name (default: the config's name:, else its file stem)."),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps (overrides train.device)."),
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Plain one-line-per-trial logs.")]


@contextlib.contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """The one place where errors become one line on stderr and an exit code."""
    from adamtune.storage import redact

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _Redacting) for f in handler.filters):
            handler.addFilter(_Redacting())
    try:
        yield
    except AdamtuneError as exc:
        if debug:
            err.print(redact(traceback.format_exc()), highlight=False, markup=False)
        for line in str(exc).splitlines():
            err.print(f"error: {redact(line)}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print(
            "interrupted: finished trials are kept; run the same command to resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a bug of ours, or something unforeseen: still one line
        if debug:  # the traceback, without a password a message may hold
            err.print(redact(traceback.format_exc()), highlight=False, markup=False)
            raise typer.Exit(1) from None
        err.print(
            f"error: internal error: {type(exc).__name__}: {redact(str(exc))} "
            f"(run again with --debug for the traceback)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


class _Redacting(logging.Filter):
    """Log records without the password of any URL in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        from adamtune.storage import redact

        record.msg, record.args = redact(record.getMessage()), ()
        return True


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _settings(path: Path) -> Any:
    from adamtune.config import load_config

    return load_config(path)


def _open_study(config: Path | None, storage: str | None, study: str | None) -> tuple[Any, str]:
    """The study a read command is about: by config, by --study, or the latest one."""
    from adamtune.api import find_study

    _quiet_optuna()
    return find_study(config, storage, study)


def _batch_option(value: str | None) -> int | Literal["auto"] | None:
    if value is None or value == "auto":
        return value  # type: ignore[return-value]
    if value.isdigit() and int(value) >= 1:
        return int(value)
    from adamtune.errors import ConfigError

    raise ConfigError(f"--batch: must be a whole number >= 1 or 'auto' (got {value!r})")


@app.command()
def search(
    config: ConfigArg,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    device: DeviceOpt = None,
    trials: Annotated[
        int | None,
        typer.Option(
            min=1, help="Total trials for the study, baseline included (overrides search.trials)."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop starting trials after this many seconds.")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete the study and start over.")
    ] = False,
    batch: Annotated[
        str | None,
        typer.Option(
            metavar="K|auto",
            help="Train K trials together as one vectorised model (overrides search.batch).",
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Also write a machine-readable summary here (for CI)."),
    ] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run (or resume) the study a config describes.

    Example: adamtune search configs/digits-mlp.yaml --trials 30 --batch 16
    """
    with _errors(debug):
        from adamtune.errors import ConfigError

        if timeout is not None and timeout <= 0:
            raise ConfigError(f"--timeout: must be > 0 seconds (got {timeout:g})")
        batch_k = _batch_option(batch)
        settings = _settings(config)
        from adamtune.cli.progress import LiveProgress, PlainProgress
        from adamtune.cli.render import print_search_summary
        from adamtune.results import best_result
        from adamtune.search import SearchOptions, run_search
        from adamtune.storage import load_study, open_storage, resolve_storage

        _quiet_optuna()
        url = resolve_storage(storage, settings.config.search.storage)
        options = SearchOptions(
            storage=url,
            study_name=study,
            trials=trials,
            timeout=timeout,
            device=device,
            fresh=fresh,
            batch=batch_k,
        )
        live = not quiet and err.is_terminal
        observer = LiveProgress(err) if live else PlainProgress(err)
        began = time.monotonic()
        try:
            run = run_search(settings, options, observer)
        finally:
            if isinstance(observer, LiveProgress):
                observer.stop()
        best = best_result(
            load_study(run.study, open_storage(url, must_exist=True), url), run.storage
        )
        print_search_summary(out, best, len(run.ran), run.stopped_by)
        _ci_outputs(run, best, time.monotonic() - began, json_path)


def _ci_outputs(run: Any, best: Any, seconds: float, json_path: Path | None) -> None:
    """``--json PATH`` and, on GitHub Actions, the step summary."""
    from adamtune.ci import append_step_summary, search_summary, step_summary
    from adamtune.cli.render import gain_line
    from adamtune.errors import ConfigError
    from adamtune.formats import to_json

    if json_path is not None:
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(to_json(search_summary(run, best, seconds)) + "\n")
        except OSError as exc:
            raise ConfigError(f"--json: cannot write {json_path}: {exc.strerror or exc}") from None
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        append_step_summary(summary_file, step_summary(best, gain_line(best), run.stopped_by))


@app.command()
def check(
    baseline: Annotated[
        Path,
        typer.Option(help="A previous search --json summary (or best --format json output)."),
    ],
    config: OptConfigArg = None,
    tolerance: Annotated[
        float, typer.Option(help="Allowed relative worsening: 0.05 lets the loss grow 5%.")
    ] = 0.0,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    debug: DebugOpt = False,
) -> None:
    """CI gate: exit 3 when the study's winner is worse than a baseline beyond the tolerance.

    Example: adamtune check configs/digits-mlp.yaml --baseline baseline.json --tolerance 0.05
    """
    with _errors(debug):
        from adamtune.ci import baseline_value, gate
        from adamtune.ci import check as compare
        from adamtune.cli.render import say
        from adamtune.results import best_result

        reference = baseline_value(baseline)
        found, url = _open_study(config, storage, study)
        result = compare(best_result(found, url).value, reference, tolerance)
        if result.passed:
            say(out, "ok: " + result.message())
        gate(result)


@app.command()
def best(
    config: OptConfigArg = None,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    format: FormatOpt = Format.table,
    max_loss: Annotated[
        float | None,
        typer.Option("--max-loss", help="CI gate: exit 3 if the best val loss is above this."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Print the winning hyperparameters.

    Example: adamtune best --format json   (or --format torch for code to paste)
    """
    with _errors(debug):
        from adamtune.cli.render import best_table, extra_lines, say, stages_table
        from adamtune.formats import to_json, to_yaml, torch_code
        from adamtune.results import best_result

        found, url = _open_study(config, storage, study)
        result = best_result(found, url)
        if format is Format.json:
            print(to_json(result.as_dict()))
        elif format is Format.yaml:
            print(to_yaml(result.as_dict()), end="")
        elif format is Format.torch:
            print(torch_code(result))
        else:
            out.print(best_table(result))
            for line in extra_lines(result):
                say(out, line)
            out.print(stages_table(result.stages))
        if max_loss is not None:
            from adamtune.ci import check as compare
            from adamtune.ci import gate

            gate(compare(result.value, max_loss, 0.0))


@app.command()
def trials(
    config: OptConfigArg = None,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    format: FormatOpt = Format.table,
    sort: Annotated[
        str, typer.Option(metavar="number|value|stage", help="Row order (value: lowest first).")
    ] = "number",
    stage: Annotated[
        list[str] | None, typer.Option(help="Only trials of this stage (repeatable).")
    ] = None,
    state: Annotated[
        list[str] | None,
        typer.Option(
            help="Only trials in this state: complete, pruned, diverged, ... (repeatable)."
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """One row per trial: number, stage, state, params, value, epochs run.

    Example: adamtune trials configs/digits-mlp.yaml --sort value --state complete --format json
    """
    with _errors(debug):
        from adamtune.cli.render import lr_range_line, say, trials_table
        from adamtune.formats import to_json, to_yaml, trials_data, trials_torch_code
        from adamtune.lr_range import stored_range
        from adamtune.rows import filter_rows, trial_rows

        found, url = _open_study(config, storage, study)
        every = trial_rows(found)
        rows = filter_rows(every, stage, state, sort)
        if format is Format.json:
            print(to_json(trials_data(rows)))
        elif format is Format.yaml:
            print(to_yaml(trials_data(rows)), end="")
        elif format is Format.torch:
            print(trials_torch_code(found.study_name, rows))
        else:
            shown = f"{len(rows)} of {len(every)} trials" if len(rows) < len(every) else ""
            title = f"study {found.study_name} ({url}): {shown or f'{len(rows)} trials'}"
            out.print(trials_table(rows, title))
            lr_range = stored_range(found)
            if lr_range is not None:
                say(out, lr_range_line(lr_range))


class ReportFormat(str, Enum):
    html = "html"
    md = "md"


@app.command()
def report(
    config: OptConfigArg = None,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write it (default report.html / report.md)."),
    ] = None,
    format: Annotated[
        ReportFormat | None,
        typer.Option("--format", "-f", help="html (self-contained) or md (default: from --out)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Write an offline HTML report of a study (or Markdown with PNGs beside it, for CI).

    Example: adamtune report configs/digits-mlp.yaml --out report.html
    """
    with _errors(debug):
        from adamtune.errors import ConfigError
        from adamtune.report import build_report, to_html, to_markdown

        if format is None:
            md = out_path is not None and out_path.suffix.lower() in (".md", ".markdown")
            format = ReportFormat.md if md else ReportFormat.html
        found, url = _open_study(config, storage, study)
        built = build_report(found, url)
        target = out_path or Path(f"report.{format.value}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if format is ReportFormat.html:
                target.write_text(to_html(built), encoding="utf-8")
            else:
                text, files = to_markdown(built, target.parent / f"{target.stem}_files")
                for path, data in files.items():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--out: cannot write {target}: {exc.strerror or exc}") from None
        err.print(f"report written to {target} ({len(built.figures)} figures)", highlight=False)


@app.command()
def verify(
    config: OptConfigArg = None,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    seeds: Annotated[
        int, typer.Option("--seeds", min=2, help="Fresh seeds (and splits) to retrain on.")
    ] = 5,
    format: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
    device: DeviceOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Retrain the winner, the runner-up and Adam's defaults on fresh seeds: is the gain real?

    Example: adamtune verify configs/digits-mlp.yaml --seeds 5
    """
    with _errors(debug):
        from adamtune.errors import ConfigError, NoCompletedTrialError

        if format not in (Format.table, Format.json):
            raise ConfigError(f"--format: verify prints table or json (got {format.value})")
        from adamtune.api import study_settings
        from adamtune.results import study_selection
        from adamtune.task import build_task
        from adamtune.verify import verify as verify_study

        found, url = _open_study(config, storage, study)
        settings = study_settings(found, config)
        rows, selection = study_selection(found)
        if selection.winner is None:
            raise NoCompletedTrialError(f"study {found.study_name!r} has no completed trial yet")
        task = build_task(settings, device)
        err.print(f"retraining on {seeds} fresh seeds and splits ...", highlight=False)
        result = verify_study(found, task, seeds, selection, rows)
        if format is Format.json:
            from adamtune.formats import to_json

            print(to_json(result.as_dict()))
        else:
            from adamtune.cli.render import say, verification_lines

            for line in verification_lines(result):
                say(out, line)


@app.command("lr-find")
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
    format: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
    device: DeviceOpt = None,
    debug: DebugOpt = False,
) -> None:
    """LR range test: raise Adam's lr exponentially, one step per batch, until the loss blows up.

    Example: adamtune lr-find configs/digits-mlp.yaml --seeds 3 --plot lr-find.png
    """
    with _errors(debug):
        from adamtune.errors import ConfigError

        if not 0 < start < end:
            raise ConfigError(f"--start/--end: need 0 < start < end (got {start:g}, {end:g})")
        if format not in (Format.table, Format.json):
            raise ConfigError(f"--format: lr-find prints table or json (got {format.value})")
        settings = _settings(config)
        from adamtune.formats import range_test_data, to_json
        from adamtune.range_test import run_range_test, summarise
        from adamtune.task import build_task

        task = build_task(settings, device)
        curves = run_range_test(task, seeds, start, end, steps)
        summary = summarise(curves)
        if plot is not None:
            from adamtune.plots import range_test_png

            range_test_png(curves, plot)
        if format is Format.json:
            print(to_json(range_test_data(curves, summary)))
            return
        from adamtune.cli.render import range_test_table, text_plot

        out.print(range_test_table(summary, f"{settings.study_name}: LR range test"))
        say(out, text_plot(curves[0]))
        if plot is not None:
            say(out, f"plot written to {plot}")


@app.command()
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
        from adamtune.plan import make_plan
        from adamtune.task import build_task

        task = build_task(settings, device)
        search_cfg = settings.config.search
        plan = ", ".join(f"{s.name} {s.trials}" for s in make_plan(search_cfg, search_cfg.trials))
        say(out, f"{config}: valid")
        say(out, f"study {settings.study_name}: {task.describe()}")
        say(
            out,
            f"{search_cfg.strategy} search, {search_cfg.trials} trials: defaults 1"
            + (f", {plan}" if plan else ""),
        )


@app.command()
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
    sys.exit(app())
