"""Noise-aware selection: which trial's parameters a stage may fix, judged beyond seed noise.

One trial's validation loss moves with the seed (initial weights, batch order, dropout) and
with the rows that land in the validation split, so the best of dozens of trials is partly the
luckiest (the winner's curse). Runs are grouped in seed slots: slot 0 is the search's own seed
and split, slot j > 0 a fresh seed and a fresh train/val split (``Task.runs``). A study

- measures the noise: Adam's defaults are trained on ``confirm.seeds`` seed slots in all (the
  baseline trial, then trials of stage ``noise``), and the spread of their values is the noise;
- confirms before fixing: when a stage's search ends, its ``top`` best distinct candidates are
  re-trained on the same extra seed slots (trials of stage ``confirm``), and
- moves a parameter only for a real gain: on the extra seeds (not the one that chose the
  candidates), the candidate with the lowest mean replaces the incumbent (the defaults, or an
  earlier stage's winner, run on the same seeds) only when its mean is lower by more than the
  noise of that difference (``bar``), at 80% confidence by default (``search.confirm``).

A stage whose candidates were not confirmed (a budget too small to confirm, or a study
stopped mid-stage) is judged on the search's seeds, against the defaults' spread.
Everything here reads plain rows (``results.TrialRow``), so ``search`` and ``best`` agree.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from adamtune import student_t
from adamtune.rows import TrialRow
from adamtune.search.plan import BASELINE, Stage
from adamtune.space import AdamParams

_MIN_GAIN = 0.1  # of the noise: the smallest gain worth moving a parameter for
NOISE = "noise"
CONFIRM = "confirm"
# States of a finished run; killed and interrupted ones are run again, so they do not count.
_DONE = ("complete", "pruned", "diverged", "failed")


@dataclass(frozen=True)
class Measured:
    """One parameter set's values over seed slots 0, 1, ... (inf where a run did not
    complete: diverged, pruned or failed)."""

    trial: int  # the search trial (slot 0) these runs measure
    params: AdamParams
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return _mean(self.values)

    @property
    def std(self) -> float:
        return _std(self.values)

    def on(self, slots: int) -> Measured:
        """The values a comparison over ``slots`` seed slots uses: the re-runs only, when
        there are any (slot 0 chose the candidate, so its value there is the luckiest of its
        stage: the winner's curse), else slot 0."""
        return Measured(self.trial, self.params, self.values[1:slots] or self.values[:1])


def _mean(values: tuple[float, ...]) -> float:
    return math.inf if not all(math.isfinite(v) for v in values) else statistics.fmean(values)


def _std(values: tuple[float, ...]) -> float:
    if len(values) < 2:
        return 0.0
    if not all(math.isfinite(v) for v in values):
        return math.inf
    return statistics.stdev(values)


@dataclass
class Decision:
    """What one stage did to the incumbent."""

    stage: str
    before: Measured
    best: Measured  # the stage's best candidate, on the slots compared
    bar: float  # the gain it needed
    adopted: bool
    confirmed: bool  # judged on re-runs, not on the search's own slot alone


@dataclass
class Selection:
    """The result of a study's stages, in the order they ran."""

    defaults: Measured | None
    winner: Measured | None
    noise: float | None  # the defaults' standard deviation over seeds; None with one seed
    decisions: list[Decision] = field(default_factory=list)
    overall: Decision | None = None  # the winner against the defaults, when stages moved


def finished(row: TrialRow) -> bool:
    return row.state in _DONE


def measured(rows: list[TrialRow], row: TrialRow) -> Measured:
    """``row``'s value (slot 0) and those of its finished re-runs on later slots, in order,
    up to the first slot not run yet."""
    # A re-run that raised (out of memory, say) measured nothing: the slot stays missing.
    runs = {
        r.slot: r for r in rows if r.confirms == row.number and finished(r) and r.state != "failed"
    }
    values = [_value(row)]
    while len(values) in runs:
        values.append(_value(runs[len(values)]))
    assert row.params is not None
    return Measured(row.number, row.params, tuple(values))


def _value(row: TrialRow) -> float:
    return row.value if row.value is not None else math.inf


def candidates(rows: list[TrialRow], stage: str, incumbent: AdamParams, top: int) -> list[TrialRow]:
    """A stage's ``top`` best completed trials with distinct parameters other than the
    incumbent's: the ones worth confirming."""
    done = sorted(
        (r for r in rows if r.stage == stage and r.value is not None and r.params is not None),
        key=lambda r: (r.value, r.number),
    )
    picked: list[TrialRow] = []
    for row in done:
        if row.params != incumbent and all(row.params != p.params for p in picked):
            picked.append(row)
    return picked[:top]


def bar(noise: float | None, compared: list[Measured], confidence: float = 0.8) -> float:
    """The noise of the difference between two of ``compared`` (measured on the same seed
    slots): the gain a candidate must show over the incumbent to replace it.

    Every parameter set of a comparison ran on the same seeds, and much of the spread between
    seeds is shared (one seed's initial weights suit every learning rate alike), so it cancels
    in the difference. What remains is the spread of the parameter-by-seed residuals of the
    table ``compared`` x seeds (two-way, without interaction), s; the mean difference of two
    rows over n seeds has standard error s * sqrt(2 / n). With a single seed nothing can be
    separated, and the bar is the defaults' spread between seeds (``noise``), or 0 when that
    was not measured.
    """
    rows = [m.values for m in compared if all(math.isfinite(v) for v in m.values)]
    n = len(rows[0]) if rows else 0
    if n < 2 or len(rows) < 2:
        return noise or 0.0
    grand = statistics.fmean(v for r in rows for v in r)
    row_means = [statistics.fmean(r) for r in rows]
    slot_means = [statistics.fmean(r[j] for r in rows) for j in range(n)]
    residuals = [
        r[j] - row_means[i] - slot_means[j] + grand for i, r in enumerate(rows) for j in range(n)
    ]
    df = (len(rows) - 1) * (n - 1)
    s = math.sqrt(sum(e * e for e in residuals) / df)
    paired = student_t.quantile(confidence, df) * s * math.sqrt(2 / n)
    # A gain under a tenth of what seeds and splits move the defaults by may be real, but it
    # is too small to matter: it never moves a parameter (an eps of 1e-8 or 6e-7 trains
    # almost alike, so their tiny difference is consistent, and would pass the test alone).
    return max(paired, (noise or 0.0) * _MIN_GAIN)


def beats(a: Measured, b: Measured, needed: float) -> bool:
    """Whether ``b`` replaces ``a``: lower by more than ``needed``, or finite where ``a``
    diverged on some seed."""
    if not math.isfinite(b.mean):
        return False
    return not math.isfinite(a.mean) or a.mean - b.mean > needed


def baseline_row(rows: list[TrialRow]) -> TrialRow | None:
    """The trial of Adam's defaults that ran to its end (or diverged: it then scores inf); a
    baseline that raised is run again."""
    done = [r for r in rows if r.stage == BASELINE and r.state in ("complete", "diverged")]
    return done[0] if done else None


def select(
    rows: list[TrialRow], stages: list[str], confidence: float = 0.8, final: bool = True
) -> Selection:
    """Walk ``stages`` in order from Adam's defaults, adopting each stage's best candidate
    only when it beats the incumbent by more than the noise of their difference.

    A stage's candidates are those that were re-run on extra seeds; when none was (a stage
    too small to confirm, or not confirmed yet), its best trial, on the search's seed. Once
    the noise is measured, only a confirmed candidate, finite on every seed, may move a
    parameter. Last (``final``), the winner is compared with the defaults on the same extra
    seeds at a confidence that accounts for the number of stages that had their chance
    (Bonferroni; ``Selection.overall``): small chance moves, stage after stage, must not add up
    to a claimed improvement. The winner stays the stages' choice either way (each of its
    moves passed its own test; in benchmarks/quality.py reverting them lost real gains), but
    ``verdict`` says whether the improvement is established.
    """
    base = baseline_row(rows)
    if base is None:
        return Selection(None, None, None)
    defaults = measured(rows, base)
    finite = tuple(v for v in defaults.values if math.isfinite(v))
    noise = _std(finite) if len(finite) >= 2 else None
    incumbent = defaults
    selection = Selection(defaults, defaults, noise)
    rerun = {r.confirms for r in rows if r.confirms is not None}
    for stage in stages:
        ranked = candidates(rows, stage, incumbent.params, len(rows))
        picked = [measured(rows, r) for r in ranked if r.number in rerun] or [
            measured(rows, r) for r in ranked[:1]
        ]
        if not picked:
            continue
        slots = min(len(incumbent.values), *(len(m.values) for m in picked))
        # A candidate that diverged on any seed is never adopted, whatever the compared slots.
        eligible = [m for m in picked if math.isfinite(m.mean)] or picked
        chosen = min(eligible, key=lambda m: (m.on(slots).mean, m.trial))
        before, best = incumbent.on(slots), chosen.on(slots)
        needed = bar(noise, [before, *(m.on(slots) for m in picked)], confidence)
        confirmed = slots > 1
        adopted = (
            (confirmed or noise is None)  # measured noise: only confirmed candidates move
            and math.isfinite(chosen.mean)
            and beats(before, best, needed)
        )
        selection.decisions.append(Decision(stage, before, best, needed, adopted, confirmed))
        if adopted:
            incumbent = chosen
    selection.winner = incumbent
    if final:
        selection.overall = _overall(selection, incumbent, defaults, noise, confidence)
    return selection


def _overall(
    selection: Selection,
    winner: Measured,
    defaults: Measured,
    noise: float | None,
    confidence: float,
) -> Decision | None:
    """The winner against the defaults, across all the stages' chances (None when no stage
    moved, or when nothing was confirmed)."""
    judged = sum(1 for d in selection.decisions if d.confirmed)
    if winner is defaults or noise is None or not judged:
        return None
    slots = min(len(winner.values), len(defaults.values))
    a, b = defaults.on(slots), winner.on(slots)
    needed = bar(noise, [a, b], 1 - (1 - confidence) / judged)
    return Decision("overall", a, b, needed, beats(a, b, needed), slots > 1)


def verdict(selection: Selection) -> str:
    """``improved`` (beyond noise, all stages counted), ``within_noise`` (stages moved, but
    the gain over the defaults is not established) or ``kept_defaults`` (nothing moved)."""
    if selection.winner is selection.defaults:
        return "kept_defaults"
    if selection.overall is not None and not selection.overall.adopted:
        return "within_noise"
    return "improved"


# --- which runs are due ----------------------------------------------------------------------
def _ran(rows: list[TrialRow], row: TrialRow, slot: int) -> bool:
    return any(r.confirms == row.number and r.slot == slot and finished(r) for r in rows)


def noise_due(rows: list[TrialRow], seeds: int) -> list[tuple[TrialRow, int]]:
    """The baseline's re-runs on extra seed slots still to run, as (baseline, slot)."""
    base = baseline_row(rows)
    if base is None:
        return []
    return [(base, slot) for slot in range(1, seeds) if not _ran(rows, base, slot)]


def confirmable(rows: list[TrialRow], base: AdamParams, stage: Stage, ran: int) -> list[TrialRow]:
    """The candidates ``stage`` confirms once it has searched ``ran`` trials: its best, as
    many as planned, found (completed, distinct) and still paid for by its budget."""
    if not stage.extra:
        return []
    fits = max(stage.trials - ran, 0) // stage.extra
    return candidates(rows, stage.name, base, min(stage.confirm, fits))


def search_due(
    rows: list[TrialRow], base: AdamParams, stage: Stage, ran: int, choices: int | None
) -> int:
    """How many more trials ``stage`` draws before it confirms: the rest of its search budget,
    or, when too few of its trials completed to confirm as planned (pruned, diverged), one more
    at a time out of the confirmation budget they leave unused (``choices``: how many a stage
    of choices can try at all)."""
    if ran < stage.search:
        return stage.search - ran
    target = stage.trials - len(confirmable(rows, base, stage, ran)) * stage.extra
    return 1 if ran < target and (choices is None or ran < choices) else 0


def confirm_due(
    rows: list[TrialRow], base: AdamParams, stage: Stage, ran: int
) -> list[tuple[TrialRow, int]]:
    """The re-runs of ``stage``'s candidates still to run, as (candidate, slot), slot by slot
    (a slot's runs share seeds and split, so they can train as one batch)."""
    picked = confirmable(rows, base, stage, ran)
    return [
        (row, slot)
        for slot in range(1, stage.extra + 1)
        for row in picked
        if not _ran(rows, row, slot)
    ]
