"""The study's winner where Optuna's own tools look. Optuna's ``best_trial`` (``optuna
best-trial``, optuna-dashboard's "best") is the lowest single run, which may be a confirmation
re-run on a luckier split; adamtune's winner is the candidate with the lowest mean on the fresh
seed slots. So after a search the study's user attribute ``adamtune_winner`` names it (trial,
mean ± std over its seeds, Adam's defaults on the same seeds, the verdict, the parameters), and,
when optuna-dashboard is installed, so does the study's note."""

from __future__ import annotations

import math
from typing import Any

import optuna

from adamtune.config.schema import sign_of_direction
from adamtune.search.plan import BASELINE, CONFIRM, NOISE
from adamtune.search.rows import TrialRow, maximized, trial_rows
from adamtune.search.selection import Measured, Selection, select, verdict
from adamtune.search.study import CONFIG_ATTR, metric_of

WINNER_ATTR = "adamtune_winner"


def stage_order(rows: list[TrialRow]) -> list[str]:
    """The searched stages in the order they ran (not the baseline, noise or confirm runs)."""
    order: list[str] = []
    for row in rows:
        if row.stage not in order and row.stage not in (BASELINE, NOISE, CONFIRM):
            order.append(row.stage)
    return order


def study_selection(study: optuna.Study) -> tuple[list[TrialRow], Selection]:
    """A study's rows, and what its stages selected (at the confidence it ran with)."""
    rows = trial_rows(study)
    stored = study.user_attrs.get(CONFIG_ATTR, {})
    confidence = stored.get("search", {}).get("confirm", {}).get("confidence", 0.8)
    return rows, select(rows, stage_order(rows), confidence)


def confirmed(rows: list[TrialRow], selection: Selection) -> tuple[str, Measured, Measured] | None:
    """The winner's stage, and the winner and the defaults each over the seed slots that
    confirmed them (slot 0 chose the winner: its luckiest); None before any trial completed.
    ``adamtune best`` and the study's winner record both read them here."""
    winner, defaults = selection.winner, selection.defaults
    if winner is None or defaults is None or not math.isfinite(winner.on(1).mean):
        return None
    stage = next(r.stage for r in rows if r.number == winner.trial)
    return stage, winner.on(len(winner.values)), defaults.on(len(defaults.values))


def winner_record(study: optuna.Study) -> dict[str, Any] | None:
    """The winner as plain data (None before any trial completed): means and spreads over the
    seed slots that confirmed it, as ``adamtune best`` reports them."""
    rows, selection = study_selection(study)
    found = confirmed(rows, selection)
    if found is None:
        return None
    stage, winner, defaults = found
    finite = math.isfinite(defaults.mean)
    maximize = maximized(study)
    sign = sign_of_direction(maximize)  # the values as the study states them
    return {
        "trial": winner.trial,
        "stage": stage,
        "metric": metric_of(study),
        "direction": "maximize" if maximize else "minimize",
        "value": sign * winner.mean,
        "value_std": winner.std,
        "seeds": len(winner.values),
        "default_value": sign * defaults.mean if finite else None,
        "default_std": defaults.std if finite else None,
        "verdict": verdict(selection),
        "params": winner.params.torch_kwargs(),
        "schedule": winner.params.schedule.as_dict(),
    }


def record_winner(study: optuna.Study) -> dict[str, Any] | None:
    """Write the winner into the study's user attributes and, with optuna-dashboard installed,
    its note; returns the record."""
    record = winner_record(study)
    if record is None:
        return None
    study.set_user_attr(WINNER_ATTR, record)
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return record
    save_note(study, note_text(study.study_name, record))
    return record


def note_text(study: str, record: dict[str, Any]) -> str:
    """The study's note for optuna-dashboard (Markdown)."""
    seeds = record["seeds"]
    versus = ""
    if record["default_value"] is not None:
        versus = (
            f" against Adam's defaults' {record['default_value']:.6g} ± "
            f"{record['default_std']:.2g} on the same seeds"
        )
    params = ", ".join(f"{k}={v!r}" for k, v in record["params"].items())
    return "\n".join(
        [
            f"## adamtune: study {study}",
            "",
            f"**Winner: trial {record['trial']}** ({record['stage']}), "
            f"{record.get('metric', 'val loss')} "
            f"{record['value']:.6g} ± {record['value_std']:.2g} over {seeds} seeds{versus}. "
            f"Verdict: **{record['verdict']}**.",
            "",
            f"`torch.optim.Adam(model.parameters(), {params})`",
            "",
            "Optuna's best trial is the best single run (it may be a re-run on a luckier "
            "split); `adamtune best` gives the winner above.",
        ]
    )
