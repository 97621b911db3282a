"""Text renderings of results that need no terminal: JSON, YAML and pasteable torch code."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

from adamtune.insight.results import BestResult
from adamtune.search.rows import TrialRow
from adamtune.train.params import AdamParams
from adamtune.train.schedules import NO_SCHEDULE, Schedule, scheduler_code

if TYPE_CHECKING:  # the range test imports torch; --help stays fast without it
    from adamtune.train.lr_find import RangeCurve, Suggestion


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False, default=str)


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _kwargs(p: AdamParams) -> list[str]:
    """Adam's keyword arguments as code; floats printed with repr, so they round-trip."""
    return [
        f"lr={p.lr!r}",
        f"betas=({p.beta1!r}, {p.beta2!r})",
        f"eps={p.eps!r}",
        f"weight_decay={p.weight_decay!r}",
        f"amsgrad={p.amsgrad!r}",
        f"decoupled_weight_decay={p.decoupled_weight_decay!r}",
    ]


def value_text(value: object) -> str:
    """A parameter's value for people: a schedule (as an object or as stored) described,
    a float to 4 significant digits."""
    if isinstance(value, Schedule):
        return value.describe()
    if isinstance(value, dict):  # a schedule, as stored
        return Schedule.from_dict(value).describe()
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def spread_text(mean: float | None, std: float, seeds: int, digits: int = 4) -> str:
    """A value measured over seeds: ``0.1058 ± 0.024 over 3 seeds`` (just the value for one)."""
    if mean is None:
        return "-"
    return (
        f"{mean:.{digits}g} ± {std:.2g} over {seeds} seeds" if seeds > 1 else f"{mean:.{digits}g}"
    )


def torch_code(best: BestResult) -> str:
    """The winner as code to paste into a training script."""
    defaults = spread_text(best.default_value, best.default_std, best.default_seeds, 6)
    versus = f" (Adam's defaults: {defaults})" if best.default_value is not None else ""
    return "\n".join(
        [
            f"# adamtune study {best.study!r}, trial {best.trial} ({best.stage}): "
            f"{best.metric} {spread_text(best.value, best.value_std, best.seeds, 6)}{versus}",
            "optimizer = torch.optim.Adam(",
            "    model.parameters(),",
            *(f"    {arg}," for arg in _kwargs(best.params)),
            ")",
            *scheduler_code(best.params.schedule, best.params.lr, best.epochs),
        ]
    )


def trials_torch_code(study: str, rows: list[TrialRow]) -> str:
    """Every trial's parameters as a dict of keyword arguments, keyed by trial number."""
    lines = [
        f"# adamtune study {study!r}: the Adam parameters of every trial, by number;",
        "# use as torch.optim.Adam(model.parameters(), **ADAM_PARAMS[n])",
        "ADAM_PARAMS = {",
    ]
    for row in rows:
        if row.params is None:
            continue
        value = f", value {row.value:.6g}" if row.value is not None else ""
        schedule = row.params.schedule
        lr = f", lr schedule: {schedule.describe()}" if schedule != NO_SCHEDULE else ""
        lines.append(
            f"    {row.number}: dict({', '.join(_kwargs(row.params))}),"
            f"  # {row.stage}, {row.state}{value}{lr}"
        )
    lines.append("}")
    return "\n".join(lines)


def trials_data(rows: list[TrialRow]) -> list[dict[str, Any]]:
    return [row.as_dict() for row in rows]


def range_test_data(curves: list[RangeCurve], summary: list[Suggestion]) -> dict[str, Any]:
    """A range test as plain data: each suggestion over seeds, and every seed's curve."""
    return {
        "suggestions": {
            s.name: {
                "median": s.median,
                "spread": s.spread,
                "per_seed": s.values,
                "withheld": s.withheld,
            }
            for s in summary
        },
        "curves": [
            {"lrs": c.lrs, "losses": c.losses, "smoothed": c.smoothed, "stopped": c.stopped}
            for c in curves
        ],
    }
