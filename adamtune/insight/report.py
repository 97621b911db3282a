"""``adamtune report``: one self-contained HTML page (or Markdown with PNGs) about a study.

The page works offline: its images are embedded as data URIs, its style is inline, and it
loads nothing (no script, font, stylesheet or CDN). Contents: the answer (best against Adam's
defaults, per-stage gains), warnings (a winner at the edge of its range, pruned and diverged
trials), the optimisation history with stage bands, lr and every searched parameter against
validation loss, hyperparameter importance (Optuna's fANOVA evaluator), learning curves of the
best trial, the defaults and the top 5, the LR range test when ``lr: auto`` ran one, the
schedule comparison when that stage ran, and ``adamtune verify``'s result when there is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adamtune.insight import plots
from adamtune.insight.formats import spread_text
from adamtune.insight.results import BestResult, best_result
from adamtune.insight.verify import Verification, stored_verification
from adamtune.search import trial_attrs
from adamtune.search.plan import BASELINE
from adamtune.search.rows import TrialRow, trial_rows
from adamtune.search.selection import CONFIRM, NOISE
from adamtune.search.study import CONFIG_ATTR

if TYPE_CHECKING:
    import optuna

_EDGE = 0.05  # a winner within 5% of its range's (log) width from an end sits at the edge
_RANGED = ("lr", "beta1", "beta2", "eps", "weight_decay")


@dataclass
class Figure:
    name: str  # file stem for Markdown
    title: str
    png: bytes
    caption: str = ""


@dataclass
class Report:
    study: str
    best: BestResult
    lines: list[str]  # the summary, one sentence each
    warnings: list[str]
    counts: dict[str, int]
    figures: list[Figure] = field(default_factory=list)
    verification: Verification | None = None


def build_report(study: optuna.Study, storage: str = "") -> Report:
    """Everything the report shows, as plain data and PNG bytes."""
    best = best_result(study, storage)
    rows = trial_rows(study)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    verification = stored_verification(study)
    warnings = _warnings(best, study.user_attrs.get(CONFIG_ATTR, {}), counts)
    checked = verification.run("best") if verification else None
    if checked is not None and (checked.trial, checked.params) != (best.trial, best.params):
        warnings.append(
            f"the verification below is of an earlier winner (trial {checked.trial}; the "
            f"winner is now trial {best.trial}): run adamtune verify again"
        )
    report = Report(
        study.study_name, best, _summary(best), warnings, counts, verification=verification
    )
    report.figures = _figures(study, rows, best, report.verification)
    return report


def _summary(best: BestResult) -> list[str]:
    winner = spread_text(best.value, best.value_std, best.seeds)
    lines = [f"Best {best.metric} {winner} (trial {best.trial}, stage {best.stage})."]
    if best.default_value is not None:
        defaults = spread_text(best.default_value, best.default_std, best.default_seeds)
        change = f" ({best.change:+.1%})" if best.change is not None else ""
        lines.append(f"Adam's defaults: {defaults}{change}; verdict: {best.verdict}.")
    if best.noise is not None:
        lines.append(f"Noise: ±{best.noise:.2g} across {best.noise_seeds} seeds (Adam's defaults).")
    if best.decay is not None:
        lines.append(best.decay.sentence() + ".")
    if best.lr_range is not None:
        r = best.lr_range
        lines.append(f"lr: auto: the range test set the lr range to {r.low:.2g} .. {r.high:.2g}.")
    return lines


def _warnings(best: BestResult, stored: dict[str, Any], counts: dict[str, int]) -> list[str]:
    out = []
    space = stored.get("search", {}).get("space", {})
    ranges: dict[str, tuple[float, float]] = {}
    for name in _RANGED:
        spec = space.get(name)
        if not isinstance(spec, dict) or spec.get("low") is None or spec.get("high") is None:
            continue
        if spec["low"] < spec["high"]:
            ranges[name] = (spec["low"], spec["high"])
    if best.lr_range is not None:
        ranges["lr"] = (best.lr_range.low, best.lr_range.high)
    for name, (low, high) in ranges.items():
        value = getattr(best.params, name)
        if name in ("beta1", "beta2"):  # searched as 1 - beta
            value, low, high = 1 - value, 1 - high, 1 - low
        if value <= 0 or low <= 0:
            continue
        position = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        if not 0 <= position <= 1:  # a value no trial of the range beat (the default, kept)
            out.append(f"best {name} lies outside its searched range: nothing in it did better")
        elif position <= _EDGE or position >= 1 - _EDGE:
            end = "bottom" if position <= _EDGE else "top"
            if name in ("beta1", "beta2"):
                end = "top" if end == "bottom" else "bottom"  # 1 - beta turns the axis over
            out.append(f"best {name} is at the {end} of its range: widen it")
    diverged, pruned = counts.get("diverged", 0), counts.get("pruned", 0)
    failed = counts.get("failed", 0)
    if diverged:
        out.append(f"{diverged} trials diverged (NaN or infinite loss): the range reaches too far")
    if failed:
        out.append(f"{failed} trials failed (an error in training; see adamtune trials)")
    if pruned:
        out.append(f"{pruned} trials were pruned (stopped early by the pruner)")
    return out


def _figures(
    study: optuna.Study, rows: list[TrialRow], best: BestResult, verified: Verification | None
) -> list[Figure]:
    label = "validation loss" if best.metric == "val loss" else best.metric
    figures = [Figure("history", "Optimisation history", plots.history(rows, label))]
    searched = _varied(rows)
    for name in searched:
        title = f"lr against {label}" if name == "lr" else f"{name} against {label}"
        figures.append(Figure(f"param-{name}", title, plots.parameter(rows, name, label)))
    importances = _importance(rows, searched)
    if importances:
        figures.append(
            Figure(
                "importance",
                "Hyperparameter importance",
                plots.importance(importances),
                "fANOVA (Optuna) over every searched trial's full parameters.",
            )
        )
    named = _curves(study, rows, best)
    if named:
        curves = plots.curves(named, label, best.maximize)
        figures.append(Figure("curves", "Learning curves", curves))
    if best.lr_range is not None and best.lr_range.curves:
        r = best.lr_range
        lines = [(c["lrs"], c["smoothed"]) for c in r.curves]
        shown = {k: r.suggestions.get(k) for k in ("valley", "largest_stable")}
        figures.append(
            Figure(
                "range-test",
                "LR range test",
                plots.range_test(lines, shown, (r.low, r.high)),
                f"lr searched from {r.low:.2g} to {r.high:.2g} ({r.rule}).",
            )
        )
    if best.decay is not None:
        figures.append(
            Figure(
                "schedules",
                "Schedule comparison",
                plots.bars(best.decay.per_schedule, f"Best {label} per schedule", label),
                best.decay.sentence() + ".",
            )
        )
    if verified is not None:
        runs = {r.label: r.values for r in verified.runs}
        figures.append(Figure("verify", "Verification", plots.spread(runs, label)))
    return figures


def _varied(rows: list[TrialRow]) -> list[str]:
    """Parameters that took more than one value among the searched trials."""
    done = [r for r in rows if r.confirms is None and r.params and r.value is not None]
    out = []
    for name in (*_RANGED, "amsgrad", "decoupled_weight_decay", "schedule"):
        if len({plots.coordinate(name, r.params) for r in done}) > 1:
            out.append(name)
    return out


def _importance(rows: list[TrialRow], names: list[str]) -> dict[str, float]:
    """fANOVA importance of the varied parameters, over every searched trial's full set (a
    staged study's trials record only their own stage's coordinates, so Optuna's importance
    on the study itself would see almost nothing)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    done = [
        r
        for r in rows
        if r.confirms is None and r.params and r.loss is not None and math.isfinite(r.loss)
    ]
    if len(names) < 2 or len(done) < 8:
        return {}
    points = [{n: plots.coordinate(n, r.params) for n in names} for r in done]
    dists: dict[str, Any] = {}
    for n in names:
        values = [p[n] for p in points]
        if isinstance(values[0], str):
            dists[n] = CategoricalDistribution(sorted({str(v) for v in values}))
        else:
            numbers = [float(v) for v in values]
            low, high = min(numbers), max(numbers)
            log = n in ("lr", "eps", "beta1", "beta2") and low > 0
            dists[n] = FloatDistribution(low, high, log=log)
    shadow = optuna.create_study()
    for p, r in zip(points, done, strict=True):
        shadow.add_trial(optuna.trial.create_trial(params=p, distributions=dists, value=r.loss))
    try:
        found = optuna.importance.get_param_importances(
            shadow, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (RuntimeError, ValueError):  # too few distinct points
        return {}
    return {k: float(v) for k, v in found.items()}


def _curves(
    study: optuna.Study, rows: list[TrialRow], best: BestResult
) -> dict[str, list[float | None]]:
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}

    def curve(number: int) -> list[float | None]:
        return (
            list(trials[number].user_attrs.get(trial_attrs.VAL_CURVE, []))
            if number in trials
            else []
        )

    named: dict[str, list[float | None]] = {f"best (trial {best.trial})": curve(best.trial)}
    base = next((r for r in rows if r.stage == BASELINE), None)
    if base is not None:
        named[f"Adam's defaults (trial {base.number})"] = curve(base.number)
    ranked = sorted(
        (r for r in rows if r.stage not in (BASELINE, NOISE, CONFIRM) and r.loss is not None),
        key=lambda r: (r.loss or 0.0, r.number),
    )
    for row in [r for r in ranked if r.number != best.trial][:5]:
        named[f"trial {row.number} ({row.stage})"] = curve(row.number)
    return {k: v for k, v in named.items() if v}


# --- rendering ---------------------------------------------------------------------------
