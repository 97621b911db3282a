"""Tables, checks and the plot of ``quality.py``, from plain numbers (medians over seeds)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers import PEERS

PEER_GAIN = -0.02  # (b) applies where some peer's median is more than 2% below the defaults'
OUR_GAIN = -0.01  # ... and then asks adamtune's to be at least 1% below them
FLOOR = 0.01  # the plot's lowest ratio to the defaults: lower ones are drawn on it
TIE = 1e-3  # medians closer than this (absolute val loss) tie in check (a)
COLOURS = {"adamtune": "tab:red", "random": "tab:gray", "tpe": "tab:blue", "gp": "tab:green"}


@dataclass
class Cell:
    """One method on one task at one budget: per search seed, the re-scored loss, the
    search's wall seconds, its span (first trial's start to last trial's end) and the epochs
    it trained (None where not recorded)."""

    losses: list[float]
    walls: list[float]
    spans: list[float]
    trained: list[int | None] = field(default_factory=list)

    @property
    def loss(self) -> float:
        return statistics.median(self.losses)

    @property
    def seconds(self) -> float:
        return statistics.median(self.walls)

    @property
    def span(self) -> float:
        """Over the seeds whose span is known: a result merged from a file written before
        spans were recorded has 0 there (NaN when no seed has one)."""
        known = [s for s in self.spans if s > 0]
        return statistics.median(known) if known else math.nan

    @property
    def epochs(self) -> float:
        """Median epochs trained, over the seeds that recorded them (NaN when none did)."""
        known = [e for e in self.trained if e is not None]
        return statistics.median(known) if known else math.nan


def _gain(value: float, base: float) -> float | None:
    """Relative change against ``base`` (-0.1: 10% lower), None where it means nothing."""
    if not (math.isfinite(base) and base > 0) or math.isnan(value):
        return None
    return (value - base) / base


def _pct(gain: float | None) -> str:
    return "-" if gain is None else f"{gain:+.1%}"


def table_lines(task: str, budget: int, cells: dict[str, Cell]) -> list[str]:
    base = cells["defaults"].loss if "defaults" in cells else math.nan
    lines = [
        f"{task}, {budget} trials (medians over {len(next(iter(cells.values())).losses)} "
        f"search seeds)",
        f"  {'method':<9} {'rescored':>10} {'vs defaults':>11} {'search s':>9} {'span s':>7} "
        f"{'epochs':>6}  "
        f"rescored per seed",
    ]
    for method, cell in cells.items():
        per_seed = " ".join(f"{v:.4g}" for v in cell.losses)
        lines.append(
            f"  {method:<9} {cell.loss:>10.5g} {_pct(_gain(cell.loss, base)):>11} "
            f"{cell.seconds:>9.1f} {cell.span:>7.1f} {cell.epochs:>6.0f}  {per_seed}"
        )
    low = min(cell.loss for cell in cells.values())
    lines.append(f"  lowest median: {' = '.join(m for m, c in cells.items() if c.loss == low)}")
    return lines


def check_lines(cells: dict[str, Cell]) -> tuple[list[str], dict[str, Any]]:
    """Checks (a) and (b) as printed lines, and their numbers (None: could not be judged)."""
    verdict: dict[str, Any] = {"a": None, "ratio": None, "b": None, "b_vacuous": None}
    peers = {m: c.loss for m, c in cells.items() if m in PEERS}
    ours = cells["adamtune"].loss if "adamtune" in cells else None
    if ours is None or not peers:
        return ["  (a), (b): need adamtune and at least one peer"], verdict
    best = min(peers, key=lambda m: peers[m])
    ratio = ours / peers[best] if peers[best] > 0 else math.inf
    # Below TIE in absolute val loss, two medians are both ~0 (wine): the ratio is noise.
    tie = ours > peers[best] and ours - peers[best] < TIE
    verdict.update(a=ours <= peers[best] or tie, ratio=ratio, best_peer=best, tie=tie)
    said = "yes" if ours <= peers[best] else ("tie (both below 0.001)" if tie else "NO")
    lines = [
        f"  (a) adamtune <= best peer ({best} {peers[best]:.5g}): "
        f"{said}, adamtune/{best} = {ratio:.3f}"
    ]
    if "defaults" not in cells:
        return [*lines, "  (b): needs the defaults"], verdict
    base = cells["defaults"].loss
    gains = {m: _gain(v, base) for m, v in peers.items()}
    ours_gain = _gain(ours, base)
    if ours_gain is None:
        return [*lines, f"  (b): the defaults' median is {base:g}; not judged"], verdict
    gaining = {m: g for m, g in gains.items() if g is not None and g < PEER_GAIN}
    verdict.update(adamtune_gain=ours_gain, peer_gains=gains)
    if not gaining:
        verdict.update(b=True, b_vacuous=True)
        best_gain = min((g for g in gains.values() if g is not None), default=None)
        return [
            *lines,
            f"  (b) vacuous: no peer is more than 2% below the defaults (best "
            f"{_pct(best_gain)}; adamtune {_pct(ours_gain)})",
        ], verdict
    verdict.update(b=ours_gain <= OUR_GAIN, b_vacuous=False)
    named = ", ".join(f"{m} {_pct(g)}" for m, g in gaining.items())
    return [
        *lines,
        f"  (b) peers >2% below the defaults ({named}); adamtune {_pct(ours_gain)} "
        f"(needs <= -1.0%): {'yes' if verdict['b'] else 'NO'}",
    ], verdict


def tally(checks: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    budgets = sorted({b for per_budget in checks.values() for b in per_budget})
    lines = []
    for budget in budgets:
        verdicts = [per_budget[budget] for per_budget in checks.values() if budget in per_budget]
        judged_a = [v for v in verdicts if v["a"] is not None]
        judged_b = [v for v in verdicts if v["b"] is not None]
        vacuous = sum(bool(v["b_vacuous"]) for v in judged_b)
        failed_a = [t for t, pb in checks.items() if pb.get(budget, {}).get("a") is False]
        failed_b = [t for t, pb in checks.items() if pb.get(budget, {}).get("b") is False]
        lines.append(
            f"{budget} trials: (a) holds on {sum(v['a'] for v in judged_a)}/{len(judged_a)} "
            f"tasks{' (not on ' + ', '.join(failed_a) + ')' if failed_a else ''}; "
            f"(b) on {sum(v['b'] for v in judged_b)}/{len(judged_b)} ({vacuous} vacuous)"
            f"{' (not on ' + ', '.join(failed_b) + ')' if failed_b else ''}"
        )
    return lines


def plot(cells: dict[str, dict[int, dict[str, Cell]]], path: Path) -> None:
    """Median re-scored loss / defaults' median against median search seconds: one small
    point per task and method, one large one per method at the medians over tasks (ratios
    under ``FLOOR`` drawn on it as triangles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({b for per_budget in cells.values() for b in per_budget})
    fig, axes = plt.subplots(
        1, len(budgets), figsize=(5.5 * len(budgets), 4.5), squeeze=False, sharey=True
    )
    for ax, budget in zip(axes[0], budgets, strict=True):
        for method, colour in COLOURS.items():
            points = []
            for task, per_budget in cells.items():
                row = per_budget.get(budget, {})
                if method not in row or "defaults" not in row:
                    continue
                gain = _gain(row[method].loss, row["defaults"].loss)
                if gain is None or not math.isfinite(gain):
                    continue
                points.append((row[method].seconds, 1 + gain, task))
            if not points:
                continue
            xs, ys, _ = zip(*points, strict=True)
            for x, y, name in points:  # below the floor (wine's losses of ~0): a triangle on it
                ax.scatter(
                    [x],
                    [max(y, FLOOR)],
                    s=14,
                    color=colour,
                    alpha=0.5,
                    marker="o" if y >= FLOOR else "v",
                )
                ax.annotate(name, (x, max(y, FLOOR)), fontsize=6, color=colour, alpha=0.7)
            ax.scatter(
                [statistics.median(xs)],
                [max(statistics.median(ys), FLOOR)],
                s=120,
                color=colour,
                edgecolor="black",
                label=f"{method} (median over tasks)",
            )
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{budget} trials per search")
        ax.set_xlabel("median search wall time (s)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("median re-scored val loss / defaults' (lower is better)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
