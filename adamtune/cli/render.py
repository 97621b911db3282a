"""Rich renderings for the terminal: the winner, the trials table, the end-of-search summary."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adamtune.results import BestResult, StageSummary, TrialRow
from adamtune.space import ADAM_DEFAULTS


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _param_text(name: str, value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def gain_line(best: BestResult) -> str:
    if best.default_value is None:
        return f"best val loss {best.value:.4g} (trial {best.trial}, stage {best.stage})"
    if best.stage == "defaults" or not best.improvement or best.improvement <= 0:
        return (
            f"no trial beat Adam's defaults (val loss {best.default_value:.4g}, trial {best.trial})"
        )
    return (
        f"best val loss {best.value:.4g} (trial {best.trial}, stage {best.stage}) vs Adam's "
        f"defaults {best.default_value:.4g}: {-best.improvement:+.1%}"
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
    table = Table(title="per stage", title_justify="left")
    for col in ("stage", "trials", "best val loss", "winner changed"):
        table.add_column(col, justify="right" if col in ("trials", "best val loss") else "left")
    for s in stages:
        changed = ", ".join(
            f"{k} {_param_text(k, a)} -> {_param_text(k, b)}" for k, (a, b) in s.changed.items()
        )
        table.add_row(escape(s.name), str(s.trials), _num(s.best_value), changed or "-")
    return table


def trials_table(rows: list[TrialRow], title: str) -> Table:
    table = Table(title=escape(title), title_justify="left")
    params = ["lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad"]
    if any(r.params and r.params.decoupled_weight_decay for r in rows):
        params.append("decoupled_weight_decay")
    for col in ["#", "stage", "state", *params, "value", "epochs"]:
        table.add_column(col, justify="left" if col in ("stage", "state") else "right")
    for r in rows:
        p = r.params.as_dict() if r.params else {}
        table.add_row(
            str(r.number),
            escape(r.stage),
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
        )
        if p
        else ""
    )
    value = f" val_loss={row.value:.5g}" if row.value is not None else ""
    extra = f" error: {row.error}" if row.error else ""
    epochs = f" epochs={row.epochs}" if row.epochs is not None else ""
    return (
        f"trial {row.number} [{row.stage}] {row.state}{value} {params}{epochs} "
        f"best={_num(best, 5)}{extra}"
    )


def say(console: Console, text: str) -> None:
    """Plain text: no markup, so user strings such as '[x]' print as they are."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def print_search_summary(console: Console, best: BestResult, ran: int, stopped_by: str) -> None:
    note = {
        "timeout": " (stopped by --timeout)",
        "exhausted": " (stopped: every remaining choice was tried)",
    }.get(stopped_by, "")
    say(
        console,
        f"study {best.study}: {best.n_trials} trials ({ran} run now), storage {best.storage}{note}",
    )
    say(console, gain_line(best))
    console.print(stages_table(best.stages))
    console.print(best_table(best))
    say(console, "next: adamtune best --format torch   (code to paste into your training script)")
