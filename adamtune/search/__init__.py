"""The search: a staged Optuna study of Adam's hyperparameters, trained in few wide rounds.

Data flows one way through this package:

- ``plan``: which stages a study has and how many trials each gets (pure);
- ``steps``: what runs next, from the study's trials so far (the planner: pure but for the
  draws it asks of ``drawing``);
- ``drawing`` and ``samplers``: a stage's parameters, drawn by a sampler on that stage's
  history (lr re-tuned around the incumbent's in every stage after ``lr``);
- ``ranking``: a smooth model of a stage's values, so one lucky value does not win;
- ``selection``: which parameters a stage moves, the final confirmation on fresh seed slots
  and the verdict;
- ``trial_runs`` and ``pruning``: ask, train (alone or batched), record and tell trials;
- ``workers``: many workers on one study (locks, heartbeats, the roll);
- ``run``: ``run_search``, the loop that ties them together;
- ``space``: how each parameter is searched (its Optuna coordinates);
- ``lr_auto``: the lr range of an ``lr: auto`` study, from the LR range test;
- ``study``, ``rows``, ``storage``: the Optuna study, its trials as rows, where it lives;
- ``stats``: Student's t, for the verdict.

May import ``config``, ``task`` and ``train``; nothing after it in the flow (insight, cli).
No module outside ``adamtune.cli`` imports ``typer`` or ``rich``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adamtune.search.run import (
        SearchObserver,
        SearchOptions,
        SearchRun,
        SearchStart,
        open_study,
        run_search,
    )

__all__ = [
    "SearchObserver",
    "SearchOptions",
    "SearchRun",
    "SearchStart",
    "open_study",
    "run_search",
]


def __getattr__(name: str) -> Any:
    """The entry points, imported on first use: the package's light modules (``plan``,
    ``selection``) are read by ``best`` and the report without loading torch."""
    if name in __all__:
        from adamtune.search import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
