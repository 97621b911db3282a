"""Rich renderings for the terminal: the winner, the trials table, the end-of-search summary."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adamtune.insight.formats import spread_text, value_text
from adamtune.insight.results import BestResult, StageSummary
from adamtune.search.plan import Confirmation, Stage
from adamtune.search.rows import TrialRow
from adamtune.train.params import ADAM_DEFAULTS
from adamtune.train.schedules import NO_SCHEDULE

if TYPE_CHECKING:  # the range test imports torch; --help stays fast without it
    from adamtune.insight.verify import Verification
    from adamtune.search.lr_auto import AutoRange
    from adamtune.train.lr_find import RangeCurve, Suggestion


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _param_text(name: str, value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else value_text(value)


def gain_line(best: BestResult) -> str:
    """The answer in one sentence: what tuning gained, beyond noise or not."""
    winner = spread_text(best.value, best.value_std, best.seeds)
    if best.default_value is None:
        return f"best {best.metric} {winner} (trial {best.trial}, stage {best.stage})"
    defaults = spread_text(best.default_value, best.default_std, best.default_seeds)
    if best.kept_defaults:
        if best.noise is not None:
            return (
                f"Adam's defaults are within noise of the best found: keep them "
                f"({best.metric} {defaults})"
            )
        return f"no trial beat Adam's defaults ({best.metric} {defaults}, trial {best.trial})"
    change = f": {best.change:+.1%}" if best.change is not None else ""
    found = f"{best.metric} {winner} (trial {best.trial}, stage {best.stage}) vs Adam's defaults"
    if best.verdict == "within_noise":
        return (
            f"Adam's defaults are within noise of the best found: keep them, or confirm it "
            f"with more seeds (search.confirm.seeds). Best found: {found} {defaults}{change}; "
            f"counting every candidate's chance, an established gain needs "
            f"{_num(best.overall_bar, 2)}"
        )
    return f"best {found} {defaults}{change}"


def noise_line(best: BestResult) -> str | None:
    if best.noise is None:
        return None
    return (
        f"noise: ±{best.noise:.2g} across {best.noise_seeds} seeds (Adam's defaults); the best "
        f"candidates were confirmed against the defaults on {best.noise_seeds - 1} fresh seeds"
    )


def extra_lines(best: BestResult) -> list[str]:
    """What ``best`` and ``search`` say under the answer: the noise, the lr range."""
    lines = [
        best.decay.sentence() if best.decay else None,
        noise_line(best),
        lr_range_line(best.lr_range) if best.lr_range else None,
    ]
    return [line for line in lines if line]


def lr_range_line(found: AutoRange) -> str:
    """Where an ``lr: auto`` study searched lr, and why."""
    readings = ", ".join(
        f"{name} {_num(found.suggestions.get(name), 2)}" for name in ("valley", "largest_stable")
    )
    return (
        f"lr: auto: the LR range test ({found.seeds} seeds: {readings}) set the lr range to "
        f"{found.low:.2g} .. {found.high:.2g} ({found.rule})"
    )


def best_table(best: BestResult) -> Table:
    table = Table(title=escape(f"study {best.study}: {gain_line(best)}"), title_justify="left")
    table.add_column("parameter")
    table.add_column("best", justify="right")
    table.add_column("Adam default", justify="right")
    defaults = ADAM_DEFAULTS.as_dict()
    for name, value in best.params.as_dict().items():
        mark = "" if value == defaults[name] else " *"
        table.add_row(name, _param_text(name, value) + mark, _param_text(name, defaults[name]))
    return table


def stages_table(stages: list[StageSummary]) -> Table:
    """Per stage: its best trial, the model's value for its pick and for the incumbent it
    started from (the search's seed and split), whether it moved, and what it changed."""
    table = Table(title="per stage", title_justify="left")
    right = ("trials", "best value", "pick (model)", "incumbent (model)")
    for col in ("stage", *right, "verdict", "winner changed"):
        table.add_column(col, justify="right" if col in right else "left")
    for s in stages:
        changed = ", ".join(
            f"{k} {_param_text(k, a)} -> {_param_text(k, b)}" for k, (a, b) in s.changed.items()
        )
        if s.candidate is None or s.incumbent is None:
            judged = ["-", "-", "nothing to judge"]
        else:
            verdict = "moved" if s.adopted else "kept incumbent"
            judged = [
                _num(s.candidate.mean),
                _num(s.incumbent.mean),
                verdict + s.confirmation_note,
            ]
        table.add_row(escape(s.name), str(s.trials), _num(s.best_value), *judged, changed or "-")
    return table


def _mean_std(mean: float | None, std: float | None, seeds: int) -> str:
    if mean is None:
        return "inf"
    return f"{mean:.4g} ± {std:.1g}" if seeds > 1 and std is not None else f"{mean:.4g}"


def trials_table(rows: list[TrialRow], title: str) -> Table:
    table = Table(title=escape(title), title_justify="left")
    params = ["lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad"]
    if any(r.params and r.params.decoupled_weight_decay for r in rows):
        params.append("decoupled_weight_decay")
    if any(r.params and r.params.schedule != NO_SCHEDULE for r in rows):
        params.append("schedule")
    for col in ["#", "stage", "state", *params, "value", "epochs"]:
        table.add_column(col, justify="left" if col in ("stage", "state") else "right")
    for r in rows:
        p = r.params.as_dict() if r.params else {}
        table.add_row(
            str(r.number),
            escape(stage_text(r)),
            r.state,
            *(_param_text(k, p[k]) if k in p else "-" for k in params),
            _num(r.value),
            "-" if r.epochs is None else str(r.epochs),
        )
    return table


def trial_line(row: TrialRow, best: float | None) -> str:
    """One plain line per finished trial, for logs and non-terminals."""
    p = row.params
    params = (
        (
            f"lr={p.lr:.3g} betas=({p.beta1:.4g}, {p.beta2:.5g}) eps={p.eps:.2g} "
            f"wd={p.weight_decay:.2g} amsgrad={str(p.amsgrad).lower()}"
            + (" decoupled=true" if p.decoupled_weight_decay else "")
            + (f" schedule={p.schedule.describe()!r}" if p.schedule != NO_SCHEDULE else "")
        )
        if p
        else ""
    )
    value = f" value={row.value:.5g}" if row.value is not None else ""
    extra = f" error: {row.error}" if row.error else ""
    epochs = f" epochs={row.epochs}" if row.epochs is not None else ""
    return (
        f"trial {row.number} [{stage_text(row)}] {row.state}{value} {params}{epochs} "
        f"best={_num(best, 5)}{extra}"
    )


def stage_text(row: TrialRow) -> str:
    """A trial's stage; a noise or confirmation run names the trial it re-runs and the seed."""
    if row.confirms is None:
        return row.stage
    return f"{row.stage} #{row.confirms} seed {row.slot}"


def say(console: Console, text: str) -> None:
    """Plain text: no markup, so user strings such as '[x]' print as they are."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def print_search_summary(console: Console, best: BestResult, ran: int, stopped_by: str) -> None:
    note = {
        "timeout": " (stopped by --timeout)",
        "exhausted": " (stopped: every remaining choice was tried)",
        "too_few": (
            " (stopped: the trials left are too few to confirm anything new; a new draw"
            " needs its re-runs on every seed slot too)"
        ),
    }.get(stopped_by, "")
    say(
        console,
        f"study {best.study}: {best.n_trials} trials ({ran} run now), storage {best.storage}{note}",
    )
    say(console, gain_line(best))
    for line in extra_lines(best):
        say(console, line)
    console.print(stages_table(best.stages))
    console.print(best_table(best))
    say(console, "next: adamtune best --format torch   (code to paste into your training script)")


_VERDICTS = {
    "holds": "the gain holds",
    "not_established": "the gain is not established (within the seeds' noise)",
    "worse": "the winner is worse than Adam's defaults on fresh seeds",
    "same_params": "the winner is Adam's defaults (nothing to compare)",
}
_LABELS = {"best": "best", "runner_up": "runner-up", "defaults": "Adam's defaults"}


def verification_lines(result: Verification) -> list[str]:
    """``adamtune verify``'s answer: each parameter set's mean ± std, then the paired verdict."""
    first, last = result.slots[0], result.slots[-1]
    lines = [
        f"study {result.study}: retrained on {len(result.slots)} {result.retrained_on} "
        f"(slots {first}-{last})"
    ]
    for run in result.runs:
        failed = sum(1 for v in run.values if v is None)
        note = f" ({failed} diverged)" if failed else ""
        lines.append(
            f"  {_LABELS[run.label] + f' (trial {run.trial})':<28} "
            f"{_mean_std(run.mean if math.isfinite(run.mean) else None, run.std, len(run.values))}"
            f"{note}"
        )
    gain = result.improvement
    maximize = result.maximize
    shown = gain if maximize else -gain if gain is not None else None
    change = f"{shown:+.1%}, " if shown is not None and math.isfinite(shown) else ""
    p = f"; paired t-test p = {result.p_value:.2g}" if result.p_value is not None else ""
    lines.append(
        f"best vs Adam's defaults: {change}{'higher' if maximize else 'lower'} on "
        f"{result.wins} of {len(result.slots)} "
        f"seeds{p}: {_VERDICTS[result.verdict]}"
    )
    return lines


def range_test_table(summary: list[Suggestion], title: str) -> Table:
    """Each suggestion's median over seeds, its spread (max / min) and every seed's value."""
    table = Table(title=escape(title), title_justify="left")
    for col in ("suggestion", "lr (median)", "spread", "per seed"):
        table.add_column(col, justify="left" if col == "suggestion" else "right")
    for s in summary:
        spread = "-" if s.spread is None else f"{s.spread:.2g}x"
        seeds = " ".join("-" if v is None else f"{v:.3g}" for v in s.values)
        lr = f"withheld: {s.withheld}" if s.withheld else _num(s.median, 3)
        table.add_row(s.name, lr, spread, seeds)
    return table


def text_plot(curve: RangeCurve, width: int = 60, height: int = 12) -> str:
    """The smoothed loss against log10(lr) as characters, for terminals and CI logs."""
    if len(curve.lrs) < 2:
        return "(too few steps to plot)"
    xs = [math.log10(lr) for lr in curve.lrs]
    ys = curve.smoothed
    lo, hi = min(ys), max(ys)
    grid = [[" "] * width for _ in range(height)]
    for x, y in zip(xs, ys, strict=True):
        col = round((x - xs[0]) / (xs[-1] - xs[0]) * (width - 1))
        row = round((hi - y) / ((hi - lo) or 1.0) * (height - 1))
        grid[row][col] = "*"
    lines = [f"{hi:9.3g} |" + "".join(grid[0])]
    lines += ["          |" + "".join(r) for r in grid[1:-1]]
    lines.append(f"{lo:9.3g} |" + "".join(grid[-1]))
    lines.append("          +" + "-" * width)
    lines.append(f"           lr {curve.lrs[0]:.0e}{' ' * (width - 17)}{curve.lrs[-1]:.0e}")
    return "\n".join(lines)


def plan_text(plan: list[Stage], confirm: Confirmation) -> str:
    """A study's stages and its confirmation with their trials, as ``search`` and
    ``validate`` print them: every trial the study will run but the defaults."""
    text = ", ".join(f"{s.name} {s.trials}" for s in plan)
    if confirm.trials:
        text += (
            f", confirm {confirm.trials} ({confirm.candidates} best and the defaults on "
            f"{confirm.slots} more seeds)"
        )
    return text
