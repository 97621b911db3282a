"""Commands that look closer at a study: the HTML/Markdown ``report`` and ``verify``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from adamtune.cli.base import (
    CpuThreadsOpt,
    DebugOpt,
    DeviceOpt,
    OptConfigArg,
    StorageOpt,
    StudyOpt,
    TextFormat,
    TextFormatOpt,
    _errors,
    _open_study,
    app,
    err,
    out,
)


class ReportFormat(str, Enum):
    html = "html"
    md = "md"


@app.command(rich_help_panel="Results")
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
        from adamtune.insight.report import build_report
        from adamtune.insight.report_pages import to_html, to_markdown

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


@app.command(rich_help_panel="Results")
def verify(
    config: OptConfigArg = None,
    storage: StorageOpt = None,
    study: StudyOpt = None,
    seeds: Annotated[
        int, typer.Option("--seeds", min=2, help="Fresh seeds (and splits) to retrain on.")
    ] = 5,
    format: TextFormatOpt = TextFormat.table,
    device: DeviceOpt = None,
    threads: CpuThreadsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Retrain the winner, the runner-up and Adam's defaults on fresh seeds: is the gain real?

    Example: adamtune verify configs/digits-mlp.yaml --seeds 5
    """
    with _errors(debug):
        from adamtune.api import study_settings
        from adamtune.errors import NoCompletedTrialError
        from adamtune.insight.verify import retrained_on
        from adamtune.insight.verify import verify as verify_study
        from adamtune.search.winner import study_selection
        from adamtune.task.build import build_task
        from adamtune.train.sizing import use_threads

        found, url = _open_study(config, storage, study)
        settings = study_settings(found, config)
        rows, selection = study_selection(found)
        if selection.winner is None:
            raise NoCompletedTrialError(f"study {found.study_name!r} has no completed trial yet")
        task = build_task(settings, device)
        use_threads(task, threads)
        err.print(f"retraining on {seeds} {retrained_on(task.fresh_splits)} ...", highlight=False)
        result = verify_study(found, task, seeds, selection, rows)
        if format is TextFormat.json:
            from adamtune.insight.formats import to_json

            print(to_json(result.as_dict()))
        else:
            from adamtune.cli.render import say, verification_lines

            for line in verification_lines(result):
                say(out, line)
