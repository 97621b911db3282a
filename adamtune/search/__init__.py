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
- ``run``: ``run_search``, the loop that ties them together; ``events`` and ``options``: what
  it is given and what it tells (light: no torch);
- ``local_workers``: ``--jobs N``, helper processes beside this one;
- ``space``: how each parameter is searched (its Optuna coordinates, and the windows around
  the incumbent that re-tune lr and that the final local stage draws);
- ``lr_auto``: the lr range of an ``lr: auto`` study, from the LR range test;
- ``study``, ``rows``, ``storage``: the Optuna study, its trials as rows, where it lives;
  ``trial_attrs``: every key a trial records, and the records it gets;
  ``optuna_private``: every use of Optuna's private parts; ``winner``: the winner where
  Optuna's tools look (user attributes, optuna-dashboard's note);
- ``stats``: Student's t, for the verdict.

May import ``config``, ``task`` and ``train``; nothing after it in the flow (insight, cli).
No module outside ``adamtune.cli`` imports ``typer`` or ``rich``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adamtune.search.events import SearchObserver, SearchRun, SearchStart
    from adamtune.search.options import SearchOptions
    from adamtune.search.run import open_study, run_search

__all__ = [
    "SearchObserver",
    "SearchOptions",
    "SearchRun",
    "SearchStart",
    "open_study",
    "run_search",
]


def __getattr__(name: str) -> Any:
    """The entry points, imported on first use: ``best``, the report and the CLI's progress
    display read the light modules (``events``, ``options``, ``plan``, ``selection``) without
    loading torch; ``run_search`` and ``open_study`` load it."""
    import importlib

    if name in __all__:
        home = {"SearchObserver": "events", "SearchRun": "events", "SearchStart": "events"}
        home["SearchOptions"] = "options"
        module = importlib.import_module(f"adamtune.search.{home.get(name, 'run')}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
