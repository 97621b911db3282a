"""Commands that read a study: ``best``, ``trials`` and the CI gate ``check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adamtune.cli.base import (
    DebugOpt,
    Format,
    FormatOpt,
    OptConfigArg,
    StorageOpt,
    StudyOpt,
    _errors,
    _open_study,
    app,
    out,
)
from adamtune.errors import OptionError


@app.command(rich_help_panel="Results")
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
        from adamtune.insight.formats import to_json, to_yaml, torch_code
        from adamtune.insight.results import best_result

        found, url = _open_study(config, storage, study)
        result = best_result(found, url)
        if max_loss is not None and result.maximize:
            raise OptionError(
                "max_loss",
                f"study {result.study!r} maximises {result.metric}; gate it with "
                "adamtune check --baseline FILE",
            )
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
            from adamtune.insight.ci import check as compare
            from adamtune.insight.ci import gate

            gate(compare(result.value, max_loss, 0.0))


@app.command(rich_help_panel="Results")
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
        from adamtune.insight.formats import to_json, to_yaml, trials_data, trials_torch_code
        from adamtune.search.lr_auto import stored_range
        from adamtune.search.rows import filter_rows, trial_rows

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


@app.command(rich_help_panel="CI")
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
        from adamtune.cli.render import say
        from adamtune.insight.ci import baseline_value, gate
        from adamtune.insight.ci import check as compare
        from adamtune.insight.results import best_result

        found, url = _open_study(config, storage, study)
        winner = best_result(found, url)
        reference = baseline_value(baseline, winner)
        result = compare(winner.value, reference, tolerance, winner)
        if result.passed:
            say(out, "ok: " + result.message())
        gate(result)
