"""The report as a page: self-contained HTML (images as data URIs, style inline, nothing
loaded), or Markdown with its PNG files beside it; and the tables both share with the CI step
summary (``ci``)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from adamtune.insight.formats import value_text
from adamtune.insight.report import Report
from adamtune.insight.results import BestResult
from adamtune.insight.verify import Verification

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
        verdict += s.confirmation_note
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
    out = [f"Retrained on {len(v.slots)} {v.retrained_on}:"]
    for run in v.runs:
        label = run.label.replace("_", "-")
        out.append(f"{label} (trial {run.trial}): {_num(run.mean)} ± {run.std:.2g}")
    p = f", paired t-test p = {v.p_value:.2g}" if v.p_value is not None else ""
    better = "higher" if v.maximize else "lower"
    out.append(
        f"best {better} than the defaults on {v.wins} of {len(v.slots)} seeds{p}: "
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
