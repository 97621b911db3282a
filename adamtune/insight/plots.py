"""Every figure adamtune draws (the report's, and ``lr-find --plot``), with matplotlib and no
display, from plain data, as PNG bytes: the caller writes them where they belong."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from adamtune.config.schema import sign_of_direction
from adamtune.search.rows import TrialRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# One colour per stage, in the order stages run; re-runs (noise, confirm) are drawn hollow.
_PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
_LOG = {"lr", "eps", "weight_decay"}


@contextmanager
def figure(width: float = 7.5, height: float = 3.6) -> Iterator[tuple[Figure, Axes]]:
    """A figure outside pyplot: no backend is chosen or changed (a notebook keeps its own)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    yield fig, fig.subplots()


def png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _values(rows: Sequence[TrialRow]) -> list[float]:
    return [r.value if r.value is not None else math.nan for r in rows]


def _searched(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """Trials on the search's own seed that finished with a value (no re-runs)."""
    return [r for r in rows if r.confirms is None and r.value is not None and r.params]


def _colors(rows: Sequence[TrialRow]) -> dict[str, str]:
    stages = list(dict.fromkeys(r.stage for r in rows if r.confirms is None))
    return {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(stages)}


def history(rows: Sequence[TrialRow], label: str = "validation loss") -> bytes:
    """Each trial's value by trial number, the best so far, and a band per stage."""
    colors = _colors(rows)
    with figure() as (fig, ax):
        start = 0
        for i, row in enumerate(rows):  # contiguous runs of one stage: a shaded band each
            end = i == len(rows) - 1 or rows[i + 1].stage != row.stage
            if end and row.confirms is None and row.stage in colors:
                ax.axvspan(
                    rows[start].number - 0.5,
                    row.number + 0.5,
                    color=colors[row.stage],
                    alpha=0.08,
                    lw=0,
                )
            if end:
                start = i + 1
        for stage, color in colors.items():
            mine = [r for r in _searched(rows) if r.stage == stage]
            ax.scatter(
                [r.number for r in mine],
                _values(mine),
                s=18,
                color=color,
                label=stage,
                zorder=3,
            )
        reruns = [r for r in rows if r.confirms is not None and r.value is not None]
        if reruns:
            ax.scatter(
                [r.number for r in reruns],
                _values(reruns),
                s=18,
                facecolors="none",
                edgecolors="#888888",
                label="re-runs (other seeds)",
            )
        best: TrialRow | None = None
        xs, ys = [], []
        for r in _searched(rows):
            if best is None or (r.loss or 0.0) < (best.loss or 0.0):
                best = r
            assert best.value is not None
            xs.append(r.number)
            ys.append(best.value)
        ax.step(xs, ys, where="post", color="black", lw=1.2, label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(label)
        ax.set_title("Optimisation history (bands: stages)")
        _limit_to_finite(ax, [r.value for r in _searched(rows)], _maximized(rows))
        ax.legend(fontsize=7, ncol=3)
        return png(fig)


def _maximized(rows: Sequence[TrialRow]) -> bool:
    return any(r.maximized for r in rows)


def _limit_to_finite(ax: Axes, values: Sequence[float | None], maximize: bool = False) -> None:
    """Keep a few far-off bad values (huge losses of a too-high lr) from flattening the rest;
    for a maximised metric the bad values are the low ones."""
    sign = sign_of_direction(maximize)
    finite = sorted(sign * v for v in values if v is not None and math.isfinite(v))
    if len(finite) >= 4:
        top = finite[int(0.9 * (len(finite) - 1))]
        span = top - finite[0]
        low, high = finite[0] - 0.05 * span, top + 0.6 * span + 1e-12
        ax.set_ylim(*sorted((sign * low, sign * high)))


def coordinate(name: str, params: Any) -> float | str:
    """A parameter as the search sees it: betas as 1 - beta (log axis), choices as text."""
    if name == "schedule":
        return str(params.schedule.kind)
    value = getattr(params, name)
    if isinstance(value, bool):
        return str(value).lower()
    return 1 - value if name in ("beta1", "beta2") else float(value)


def parameter(rows: Sequence[TrialRow], name: str, metric: str = "validation loss") -> bytes:
    """The value against one parameter, every searched trial, coloured by stage."""
    colors = _colors(rows)
    done = _searched(rows)
    with figure(5.2, 3.4) as (fig, ax):
        for stage, color in colors.items():
            mine = [r for r in done if r.stage == stage]
            xs = [coordinate(name, r.params) for r in mine]
            ax.scatter(xs, _values(mine), s=16, color=color, label=stage)
        numeric = all(isinstance(coordinate(name, r.params), float) for r in done)
        if numeric and (name in _LOG or name in ("beta1", "beta2")):
            positive = [coordinate(name, r.params) for r in done]
            if all(isinstance(v, float) and v > 0 for v in positive):
                ax.set_xscale("log")
        label = f"1 - {name}" if name in ("beta1", "beta2") else name
        ax.set_xlabel(label + (" (log)" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel(metric)
        ax.set_title(f"{label} against {metric}")
        _limit_to_finite(ax, [r.value for r in done], _maximized(rows))
        ax.legend(fontsize=7)
        return png(fig)


def importance(values: dict[str, float]) -> bytes:
    names = sorted(values, key=values.__getitem__)
    with figure(5.2, 0.5 + 0.4 * len(names)) as (fig, ax):
        ax.barh(names, [values[n] for n in names], color=_PALETTE[0])
        ax.set_xlabel("importance (fANOVA, share of variance)")
        ax.set_title("Hyperparameter importance")
        return png(fig)


def curves(
    named: dict[str, list[float | None]], label: str = "validation loss", maximize: bool = False
) -> bytes:
    """The value per epoch of a few trials."""
    with figure() as (fig, ax):
        for i, (name, values) in enumerate(named.items()):
            points = [(e + 1, v) for e, v in enumerate(values) if v is not None]
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker=".",
                lw=1.4,
                color="black" if i == 0 else _PALETTE[i % len(_PALETTE)],
                label=name,
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title("Learning curves")
        _limit_to_finite(ax, [v for vs in named.values() for v in vs], maximize)
        ax.legend(fontsize=7)
        return png(fig)


def range_test(
    curves: Sequence[tuple[Sequence[float], Sequence[float]]],
    suggestions: dict[str, float | None],
    span: tuple[float, float] | None = None,
) -> bytes:
    """Each seed's smoothed loss against lr, the suggestions (the medians over seeds, as the
    table beside it shows them), and the range searched."""
    with figure() as (fig, ax):
        for i, (lrs, smoothed) in enumerate(curves):
            ax.plot(lrs, smoothed, lw=1.3, label=f"seed {i}")
        for name, lr in suggestions.items():
            if lr:
                ax.axvline(lr, ls=":", lw=1, color="grey")
                ax.text(lr, ax.get_ylim()[1], f" {name}", rotation=90, va="top", fontsize=7)
        if span:
            ax.axvspan(*span, color=_PALETTE[2], alpha=0.12, label="lr range searched")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss (smoothed)")
        ax.set_title("LR range test")
        ax.legend(fontsize=7)
        return png(fig)


def bars(values: dict[str, float | None], title: str, ylabel: str) -> bytes:
    names = [n for n, v in values.items() if v is not None and math.isfinite(v)]
    with figure(5.2, 3.2) as (fig, ax):
        heights = [values[n] or 0.0 for n in names]
        ax.bar(names, heights, color=[_PALETTE[i % len(_PALETTE)] for i in range(len(names))])
        if heights:
            low, high = min(heights), max(heights)
            ax.set_ylim(low - 0.15 * (high - low + 1e-12), high + 0.1 * (high - low + 1e-12))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        return png(fig)


def spread(runs: dict[str, list[float | None]], label: str = "validation loss") -> bytes:
    """Each parameter set's values on the verification seeds, and their mean."""
    with figure(5.2, 3.2) as (fig, ax):
        for i, values in enumerate(runs.values()):
            finite = [v for v in values if v is not None and math.isfinite(v)]
            ax.scatter([i] * len(finite), finite, s=18, color=_PALETTE[i % len(_PALETTE)])
            if finite:
                ax.hlines(sum(finite) / len(finite), i - 0.25, i + 0.25, color="black")
        ax.set_xticks(range(len(runs)), list(runs))
        ax.set_ylabel(label)
        ax.set_title("Verification on fresh seeds")
        return png(fig)
