"""``quality.py``'s raw numbers as JSON (``--json``), and earlier runs' numbers merged back
in (``--merge``): more search seeds without re-running the ones already measured."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from peers import Winner
from quality_report import Cell
from quality_tasks import TASKS
from rescore import Result


def _plain_setting(value: Any) -> Any:
    """An option's value for JSON: paths (``--json``, ``--merge``'s list) as text."""
    if isinstance(value, list):
        return [_plain_setting(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _json_number(value: Any) -> Any:
    """JSON has no infinity: a non-finite float becomes null, in containers too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_number(v) for v in value]
    return value


def merge(
    results: dict[str, dict[int, dict[str, list[Result]]]],
    earlier: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Add an earlier run's results (of this run's tasks and budgets, every method) for the search
    seeds this run did not make: more seeds without re-running the ones already measured."""
    for name, per_budget in earlier["results"].items():
        if name not in args.tasks:
            continue
        for budget_text, per_method in per_budget.items():
            budget = int(budget_text)
            if budget not in args.trials:
                continue
            for method, rows in per_method.items():
                mine = results.setdefault(name, {}).setdefault(budget, {}).setdefault(method, [])
                have = {r.seed for r in mine}
                for row in rows:
                    if row["seed"] in have:
                        continue
                    fields = {k: row[k] for k in Winner.__dataclass_fields__ if k in row}
                    rescored = [math.inf if v is None else v for v in row["rescored"]]  # JSON
                    mine.append(
                        Result(row["seed"], Winner(**fields), rescored, row["rescore_seconds"])
                    )
                mine.sort(key=lambda r: r.seed)


def write_json(
    args: argparse.Namespace,
    elapsed: float,
    results: dict[str, dict[int, dict[str, list[Result]]]],
    cells: dict[str, dict[int, dict[str, Cell]]],
    checks: dict[str, dict[int, dict[str, Any]]],
) -> None:
    raw = {
        "settings": {k: _plain_setting(v) for k, v in vars(args).items()},
        "seconds": elapsed,
        "tasks": {name: asdict(TASKS[name]) for name in results},
        "results": {
            name: {
                str(budget): {
                    method: [
                        {
                            "seed": r.seed,
                            **asdict(r.winner),
                            "rescored": r.rescored,
                            "rescored_mean": r.score,
                            "rescore_seconds": r.rescore_seconds,
                        }
                        for r in rs
                    ]
                    for method, rs in per_method.items()
                }
                for budget, per_method in per_budget.items()
            }
            for name, per_budget in results.items()
        },
        "medians": {
            name: {
                str(budget): {
                    method: {
                        "rescored": cell.loss,
                        "search_seconds": cell.seconds,
                        "span_seconds": cell.span,
                        "epochs": cell.epochs,
                    }
                    for method, cell in per_method.items()
                }
                for budget, per_method in per_budget.items()
            }
            for name, per_budget in cells.items()
        },
        "checks": {
            name: {str(budget): verdict for budget, verdict in per_budget.items()}
            for name, per_budget in checks.items()
        },
    }
    args.json.write_text(json.dumps(_json_number(raw), indent=2) + "\n")
