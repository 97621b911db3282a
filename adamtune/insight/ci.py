"""The CI contract: a machine-readable search summary, a step summary, and a regression gate.

``search --json PATH`` writes ``search_summary``: one JSON object whose ``schema`` names its
version (``adamtune.search-summary/1``); a field is only ever added under the same version.
When ``GITHUB_STEP_SUMMARY`` names a file, ``search`` appends ``step_summary``'s Markdown to it.
``adamtune check --baseline FILE`` compares a study's winner with a baseline file (a previous
``search --json`` summary, or ``best --format json``) and fails (exit 3) when the winner is worse
by more than the tolerance; ``best --max-loss X`` is the same gate against a fixed number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adamtune.errors import AdamtuneError, ConfigError, OptionError
from adamtune.insight.results import BestResult

if TYPE_CHECKING:
    from adamtune.search import SearchRun

SCHEMA = "adamtune.search-summary/1"


class GateFailedError(AdamtuneError):
    """A CI gate was not met: the result got worse than allowed (exit 3)."""

    exit_code = 3


def search_summary(run: SearchRun, best: BestResult, seconds: float) -> dict[str, Any]:
    """What one ``adamtune search`` did and found, for machines."""
    return {
        "schema": SCHEMA,
        "study": run.study,
        "storage": run.storage,  # redacted
        "trials_run": len(run.ran),
        "trials_total": best.n_trials,
        "budget": run.started.total,
        "stopped_by": run.stopped_by,
        "seconds": round(seconds, 3),
        "states": _states(run),
        "best": best.as_dict(),
    }


def _states(run: SearchRun) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in run.ran:
        out[row.state] = out.get(row.state, 0) + 1
    return out


def step_summary(best: BestResult, headline: str, stopped_by: str) -> str:
    """A short Markdown summary for a CI job page: the answer, the winner, the stages."""
    from adamtune.insight.report_pages import (
        STAGE_HEAD,
        md_table,
        md_text,
        param_rows,
        stage_rows,
    )

    lines = [f"### adamtune: {md_text(best.study)}", "", md_text(headline) + "  "]
    if best.decay is not None:
        lines.append(md_text(best.decay.sentence()) + "  ")
    lines.append(f"{best.n_trials} trials; stopped by {stopped_by}.")
    lines += ["", md_table(["parameter", "best", "Adam default"], param_rows(best)), ""]
    lines += [md_table(STAGE_HEAD, stage_rows(best)), ""]
    return "\n".join(lines)


def append_step_summary(path: str, text: str) -> None:
    try:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as exc:
        raise ConfigError(f"GITHUB_STEP_SUMMARY: cannot append to {path}: {exc}") from None


@dataclass
class Check:
    value: float  # the study's winner
    baseline: float
    limit: float  # the worst value that passes
    metric: str = "val loss"
    maximize: bool = False  # a higher value is better: the limit is a floor

    @property
    def passed(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value >= self.limit if self.maximize else self.value <= self.limit

    def message(self) -> str:
        change = (self.value - self.baseline) / abs(self.baseline) if self.baseline else math.inf
        verdict = "within" if self.passed else "worse than"
        return (
            f"best {self.metric} {self.value:.6g} vs baseline {self.baseline:.6g} "
            f"({change:+.2%}): {verdict} the allowed {self.limit:.6g}"
        )


def baseline_value(path: Path, study: BestResult | None = None) -> float:
    """The winner's value in a baseline file: a ``search --json`` summary or ``best --format
    json`` output. A baseline that states another metric or direction than ``study``'s
    cannot judge it (an accuracy is no bar for a loss)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OptionError("baseline", f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OptionError("baseline", f"{path}: not a JSON file ({exc})") from None
    best = data.get("best", data) if isinstance(data, dict) else None
    value = best.get("value") if isinstance(best, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(
            f"--baseline: {path}: expected a search --json summary or best --format json "
            f"output with a finite 'value' (got {value!r})"
        )
    assert isinstance(best, dict)
    stated = (best.get("metric", "val loss"), best.get("direction", "minimize"))
    if study is not None and stated != (study.metric, study.direction):
        raise OptionError(
            "baseline",
            f"{path} states {stated[0]} ({stated[1]}), but study {study.study!r} "
            f"{study.direction}s {study.metric}: compare like with like",
        )
    return float(value)


def check(value: float, baseline: float, tolerance: float, best: BestResult | None = None) -> Check:
    """The gate: ``value`` passes when it is no worse than ``baseline`` made worse by
    ``tolerance`` (relative: 0.05 allows 5% more loss, or 5% less accuracy when ``best``'s
    study maximises its metric)."""
    if not 0 <= tolerance < math.inf:
        raise OptionError("tolerance", f"must be a finite number >= 0 (got {tolerance:g})")
    if not math.isfinite(baseline):
        raise ConfigError(f"the bar to check against must be a finite number (got {baseline:g})")
    maximize = best is not None and best.maximize
    worse = -abs(baseline) * tolerance if maximize else abs(baseline) * tolerance
    metric = best.metric if best is not None else "val loss"
    return Check(value, baseline, baseline + worse, metric, maximize)


def gate(result: Check) -> None:
    if not result.passed:
        raise GateFailedError(f"regression: {result.message()}")
