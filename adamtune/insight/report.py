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

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adamtune.insight import plots
from adamtune.insight.formats import spread_text, value_text
from adamtune.insight.results import BestResult, best_result
from adamtune.insight.verify import Verification, stored_verification
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
    lines = [f"Best validation loss {winner} (trial {best.trial}, stage {best.stage})."]
    if best.default_value is not None:
        defaults = spread_text(best.default_value, best.default_std, best.default_seeds)
        change = f" ({-best.improvement:+.1%})" if best.improvement is not None else ""
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
    figures = [Figure("history", "Optimisation history", plots.history(rows))]
    searched = _varied(rows)
    for name in searched:
        title = "lr against validation loss" if name == "lr" else f"{name} against loss"
        figures.append(Figure(f"param-{name}", title, plots.parameter(rows, name)))
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
        figures.append(Figure("curves", "Learning curves", plots.curves(named)))
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
                plots.bars(
                    best.decay.per_schedule, "Best validation loss per schedule", "validation loss"
                ),
                best.decay.sentence() + ".",
            )
        )
    if verified is not None:
        runs = {r.label: r.values for r in verified.runs}
        figures.append(Figure("verify", "Verification", plots.spread(runs)))
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
        if r.confirms is None and r.params and r.value is not None and math.isfinite(r.value)
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
        shadow.add_trial(optuna.trial.create_trial(params=p, distributions=dists, value=r.value))
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
        return list(trials[number].user_attrs.get("val_curve", [])) if number in trials else []

    named: dict[str, list[float | None]] = {f"best (trial {best.trial})": curve(best.trial)}
    base = next((r for r in rows if r.stage == BASELINE), None)
    if base is not None:
        named[f"Adam's defaults (trial {base.number})"] = curve(base.number)
    ranked = sorted(
        (r for r in rows if r.stage not in (BASELINE, NOISE, CONFIRM) and r.value is not None),
        key=lambda r: (r.value, r.number),
    )
    for row in [r for r in ranked if r.number != best.trial][:5]:
        named[f"trial {row.number} ({row.stage})"] = curve(row.number)
    return {k: v for k, v in named.items() if v}


# --- rendering ---------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 980px; margin: 2em auto; padding: 0 1em; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 13px; margin: 0.6em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 9px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.warn { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
figure { margin: 1.2em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; } .muted { color: #666; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr));
        gap: 0 1em; }
.grid h2 { font-size: 1em; }
"""


def stage_rows(best: BestResult) -> list[list[str]]:
    out = []
    for s in best.stages:
        changed = ", ".join(
            f"{k}: {value_text(a)} → {value_text(b)}" for k, (a, b) in s.changed.items()
        )
        verdict = "-" if s.candidate is None else ("moved" if s.adopted else "kept incumbent")
        if s.confirmed:
            verdict += ", confirmed"
        out.append(
            [
                s.name,
                str(s.trials),
                _num(s.best_value),
                _num(s.candidate.mean if s.candidate else None),
                _num(s.incumbent.mean if s.incumbent else None),
                verdict,
                changed or "-",
            ]
        )
    return out


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


STAGE_HEAD = [
    "stage",
    "trials",
    "best value",
    "pick (model)",
    "incumbent (model)",
    "verdict",
    "changed",
]


def param_rows(best: BestResult) -> list[list[str]]:
    from adamtune.train.params import ADAM_DEFAULTS

    defaults = ADAM_DEFAULTS.as_dict()
    return [[k, value_text(v), value_text(defaults[k])] for k, v in best.params.as_dict().items()]


def _verify_lines(v: Verification) -> list[str]:
    out = [f"Retrained on {len(v.slots)} fresh seeds and splits:"]
    for run in v.runs:
        out.append(f"{run.label} (trial {run.trial}): {_num(run.mean)} ± {run.std:.2g}")
    p = f", paired t-test p = {v.p_value:.2g}" if v.p_value is not None else ""
    out.append(
        f"best lower than the defaults on {v.wins} of {len(v.slots)} seeds{p}: "
        f"{v.verdict.replace('_', ' ')}."
    )
    return out


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>adamtune report: {e(report.study)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>adamtune report: {e(report.study)}</h1>",
        f'<p class="muted">{report.best.n_trials} trials; '
        + ", ".join(f"{n} {e(s)}" for s, n in sorted(report.counts.items()))
        + "</p>",
        "<h2>Summary</h2>",
        *(f"<p>{e(line)}</p>" for line in report.lines),
    ]
    parts += [f'<p class="warn">{e(w)}</p>' for w in report.warnings]
    parts += [
        "<h2>Winner</h2>",
        _table(["parameter", "best", "Adam default"], param_rows(report.best)),
    ]
    parts += ["<h2>Per stage</h2>", _table(STAGE_HEAD, stage_rows(report.best))]
    if report.verification is not None:
        parts += [
            "<h2>Verification</h2>",
            *(f"<p>{e(line)}</p>" for line in _verify_lines(report.verification)),
        ]
    grid = False  # one parameter plot after another: side by side
    for fig in report.figures:
        in_grid = fig.name.startswith("param-")
        if in_grid != grid:
            parts.append('<div class="grid">' if in_grid else "</div>")
            grid = in_grid
        data = base64.b64encode(fig.png).decode("ascii")
        caption = f"<figcaption>{e(fig.caption)}</figcaption>" if fig.caption else ""
        parts.append(
            f"<div><h2>{e(fig.title)}</h2>"
            f'<figure><img alt="{e(fig.title)}" src="data:image/png;base64,{data}">'
            f"{caption}</figure></div>"
        )
    if grid:
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    cells = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def to_markdown(report: Report, images: Path) -> tuple[str, dict[Path, bytes]]:
    """The report as Markdown (for CI step summaries) and its PNG files, to be written into
    ``images`` (linked relative to the Markdown file's folder)."""
    files = {images / f"{fig.name}.png": fig.png for fig in report.figures}
    lines = [f"# adamtune report: {md_text(report.study)}", ""]
    lines += [f"{md_text(line)}  " for line in report.lines] + [""]
    for warning in report.warnings:
        lines += [f"> **warning:** {md_text(warning)}", ""]
    lines += [
        "",
        "## Winner",
        "",
        md_table(["parameter", "best", "Adam default"], param_rows(report.best)),
    ]
    lines += ["", "## Per stage", "", md_table(STAGE_HEAD, stage_rows(report.best))]
    if report.verification is not None:
        lines += ["", "## Verification", ""] + [
            f"{md_text(line)}  " for line in _verify_lines(report.verification)
        ]
    for fig in report.figures:
        lines += ["", f"## {fig.title}", "", f"![{fig.title}](<{images.name}/{fig.name}.png>)"]
        if fig.caption:
            lines += ["", fig.caption]
    return "\n".join(lines) + "\n", files


def md_text(text: str) -> str:
    """Text for Markdown: no live HTML (a study or stage name is the user's)."""
    return html.escape(text, quote=False)


def md_table(head: list[str], rows: list[list[str]]) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(md_text(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([row(head), row(["---"] * len(head)), *(row(r) for r in rows)])
