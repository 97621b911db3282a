"""The ``search`` command's own options (the shared ones are in ``base``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

TrialsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="Total trials for the study, baseline included (overrides search.trials)."
    ),
]

TimeoutOpt = Annotated[
    float | None, typer.Option(min=0, help="Stop starting trials after this many seconds.")
]

FreshOpt = Annotated[bool, typer.Option("--fresh", help="Delete the study and start over.")]

BatchOpt = Annotated[
    str | None,
    typer.Option(
        metavar="K|auto",
        help="Train K trials together as one vectorised model (overrides search.batch).",
    ),
]

JsonPathOpt = Annotated[
    Path | None,
    typer.Option("--json", help="Also write a machine-readable summary here (for CI)."),
]

JobsOpt = Annotated[
    int,
    typer.Option(min=1, help="Local worker processes on the study (each takes cores / N threads)."),
]

ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="torch CPU threads per worker (default: the cores other processes leave free, "
        "looked at between epochs; cores / jobs with --jobs; also $ADAMTUNE_THREADS).",
    ),
]

HeartbeatOpt = Annotated[
    int,
    typer.Option(
        min=1,
        metavar="SECONDS",
        help="Heartbeat of running trials; a trial silent for 3 is failed and retried.",
    ),
]

TakeOverOpt = Annotated[
    bool,
    typer.Option(
        "--take-over", help="Another worker on this study is gone: fail its running trials."
    ),
]

SummaryOpt = Annotated[
    bool, typer.Option("--summary/--no-summary", hidden=True)  # --jobs helpers: none
]
