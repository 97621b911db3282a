"""What every ``adamtune`` command shares: the Typer app, the two consoles (results on
stdout, diagnostics on stderr), the common options, and the one place where errors become one
line and an exit code (0 ok, 1 runtime, 2 usage/config, 3 a CI gate)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from adamtune.errors import AdamtuneError, OptionError, first_line


class _Commands(typer.core.TyperGroup):
    """Usage errors (an unknown option, a missing argument, a value out of range) as one line
    and exit 2 too, instead of Click's usage block and boxed message."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        exceptions = _click_exceptions()
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except getattr(exceptions, "NoArgsIsHelpError", ()) as exc:  # `adamtune`: the help
            if exc.format_message():  # (typer's rich help has printed itself already)
                exc.show()
            sys.exit(exc.exit_code)
        except exceptions.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            err.print(f"error: {message}{hint}", highlight=False, markup=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:  # end of input or Ctrl-C outside a command
            err.print("aborted", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _click_exceptions() -> Any:
    """Click's exceptions: typer vendors Click since 0.2x, before that it used Click itself."""
    try:
        from typer import _click

        return _click.exceptions
    except ImportError:
        import click

        return click.exceptions


def _flags_without_a_placeholder() -> None:
    """typer (0.29) prints ``<bool>`` beside every flag in help (``--fresh <bool>``), as if
    it took a value: a flag shows nothing there (tests/cli/test_cli.py checks every command)."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:  # an older typer draws help another way: nothing to change
        return

    def display(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    TyperOption.display_type_rich = display  # type: ignore[method-assign]


_flags_without_a_placeholder()
app = typer.Typer(
    cls=_Commands,
    name="adamtune",
    help="Find the best torch.optim.Adam hyperparameters for your own model and data.\n\n"
    "Example: adamtune search configs/digits-mlp.yaml && adamtune best",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# Results on stdout, diagnostics and progress on stderr. Piped output gets room for tables.
class _Results(Console):
    """stdout's console: a reader that goes away (``| head``) ends the command quietly with
    exit 0 (``_errors``), not with rich's exit 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


out = _Results(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
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


class TextFormat(str, Enum):
    """What ``verify`` and ``lr-find`` print: their help lists only these."""

    table = "table"
    json = "json"


TextFormatOpt = Annotated[TextFormat, typer.Option("--format", "-f", help="Output format.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
CpuThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="torch CPU threads (default: the cores other processes leave free; also "
        "$ADAMTUNE_THREADS).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Plain one-line-per-trial logs.")]


@contextlib.contextmanager
def _errors(debug: bool, interrupted: str = "interrupted") -> Iterator[None]:
    """The one place where errors become one line on stderr and an exit code;
    ``interrupted`` is the line for Ctrl-C or SIGTERM."""
    from adamtune.config.storage_url import redact

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
        text = exc.as_flag() if isinstance(exc, OptionError) else str(exc)
        for line in text.splitlines():
            err.print(f"error: {redact(line)}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        from adamtune.interrupts import exit_code

        err.print(interrupted, highlight=False)
        raise typer.Exit(exit_code(exc)) from None
    except typer.Exit:
        raise
    except BrokenPipeError:
        # The reader went away (``adamtune best | head``): end quietly, as other tools do;
        # stdout goes to /dev/null so that flushing it at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except Exception as exc:  # a bug of ours, or something unforeseen: still one line
        known = _runtime_failure(exc)
        if known is not None:  # a database or the memory failed under the command
            if debug:
                err.print(redact(traceback.format_exc()), highlight=False, markup=False)
            err.print(f"error: {redact(known)}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
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


def _runtime_failure(exc: Exception) -> str | None:
    """The line for a failure of the machine rather than of adamtune, wherever it struck: a
    database that failed (locked, damaged, gone) or memory that ran out (a model too large for
    the device, the LR range test's batch)."""
    if isinstance(exc, MemoryError) or ("torch" in sys.modules and _torch_out_of_memory(exc)):
        return (
            f"out of memory ({type(exc).__name__}: {first_line(exc)}); lower data.batch_size "
            f"or --batch, or use a smaller model"
        )
    if type(exc).__module__.split(".")[0] in ("optuna", "sqlalchemy"):
        from adamtune.search.storage import storage_errors, storage_failure

        if isinstance(exc, storage_errors()):
            return str(storage_failure(None, exc))
    return None


def _torch_out_of_memory(exc: Exception) -> bool:
    from adamtune.train.engine import out_of_memory

    return out_of_memory(exc)


class _Redacting(logging.Filter):
    """Log records without the password of any URL in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        from adamtune.config.storage_url import redact

        try:
            record.msg, record.args = redact(record.getMessage()), ()
            if record.exc_info and not record.exc_text:  # the formatter uses it as it is
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        except Exception:  # a malformed record: logging reports it itself, as it would
            pass
        return True


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _settings(path: Path) -> Any:
    from adamtune.config.schema import load_config

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
    from adamtune.search.options import check_option

    check_option("batch", value)  # raises, naming the option
    return None
