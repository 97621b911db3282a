"""Selection under noise: which parameters each stage moves, and the confirmed winner.

One trial's validation loss moves with the seed (initial weights, batch order, dropout) and
with the rows that land in the validation split, so the best of dozens of trials is partly the
luckiest (the winner's curse). Runs are grouped in seed slots: slot 0 is the search's own seed
and split, slot j > 0 a fresh seed and a fresh train/val split (``Task.runs``).

- Each stage moves on the model, not on one value: its trials and the incumbent it started
  from (all on slot 0, with the same initial weights and batches) are ranked by a smooth model
  of the stage's values (``ranking``); the stage's best point by the model becomes the next
  incumbent when the model puts it below the incumbent. No stage costs a round of re-runs.
- Confirmed once, at the end: the ``confirm.top`` best candidates (the last incumbent first,
  then each stage's best point by the model) and Adam's defaults are re-trained on the extra
  seed slots (``noise`` runs for the defaults, ``confirm`` runs for the candidates). The
  winner is the candidate with the lowest mean on those fresh slots (slot 0 chose them, so it
  is left out); it replaces the defaults only when that mean is lower than theirs.
- The verdict is honest: ``improved`` when the winner's gain clears the noise of the
  difference (``bar``) at ``confirm.confidence``, with every confirmed candidate's chance
  counted (Bonferroni); ``within_noise`` when it is lower but not by that much;
  ``kept_defaults`` when nothing beat the defaults.

A study without confirmation (under 30 trials, or ``confirm.seeds: 1``) keeps the stages'
last incumbent. Everything here reads plain rows (``rows.TrialRow``), so ``search`` and
``best`` agree.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from adamtune.search import stats
from adamtune.search.plan import BASELINE, CONFIRM, NOISE, Confirmation
from adamtune.search.ranking import smoothed, unit_points
from adamtune.search.rows import TrialRow
from adamtune.train.params import AdamParams

__all__ = ["CONFIRM", "NOISE"]

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
        return stats.mean(self.values)

    @property
    def std(self) -> float:
        return stats.std(self.values)

    def on(self, slots: int) -> Measured:
        """The values a comparison over ``slots`` seed slots uses: the re-runs only, when
        there are any (slot 0 chose the candidate, so its value there is the luckiest of its
        stage: the winner's curse), else slot 0."""
        return Measured(self.trial, self.params, self.values[1:slots] or self.values[:1])


@dataclass
class Decision:
    """What one stage did to the incumbent (``before`` and ``best`` hold the model's values on
    slot 0, ``bar`` is 0: a stage moves on any gain the model sees), or, as ``overall``, how
    the confirmed winner compared with the defaults on the extra slots."""

    stage: str
    before: Measured
    best: Measured  # the stage's best candidate
    bar: float  # the gain it needed
    adopted: bool
    confirmed: bool  # a stage's pick: re-run by the final confirmation


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
    return row.loss if row.loss is not None else math.inf


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
    paired = stats.quantile(confidence, df) * s * math.sqrt(2 / n)
    # A gain under a tenth of what seeds and splits move the defaults by may be real, but it
    # is too small to matter: it never moves a parameter (an eps of 1e-8 or 6e-7 trains
    # almost alike, so their tiny difference is consistent, and would pass the test alone).
    return max(paired, (noise or 0.0) * stats.MIN_GAIN)


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


@dataclass(frozen=True)
class Pick:
    """A stage's best point by the model, and the incumbent it started from, with the model's
    values for both (on slot 0)."""

    stage: str
    best: TrialRow
    incumbent: TrialRow
    best_fit: float
    incumbent_fit: float
    ranked: list[tuple[float, TrialRow]]  # the stage's trials by fitted value, best first

    @property
    def moves(self) -> bool:
        return self.best_fit < self.incumbent_fit


def stage_pick(rows: list[TrialRow], stage: str, incumbent: TrialRow) -> Pick | None:
    """The best of ``stage``'s completed search trials by the model fitted to them and to
    ``incumbent`` (slot 0: every point shares the seed and split), or None before any
    completed."""
    mine = [
        r
        for r in rows
        if r.stage == stage and r.confirms is None and r.value is not None and r.params
    ]
    if not mine or incumbent.params is None:
        return None
    points = [incumbent, *mine]
    values = [_value(r) for r in points]
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    fits = [math.inf] * len(points)
    fitted = smoothed(
        unit_points([points[i].params for i in finite]),  # type: ignore[misc]
        [values[i] for i in finite],
    )
    for i, f in zip(finite, fitted, strict=True):
        fits[i] = f
    order = sorted(range(1, len(points)), key=lambda i: (fits[i], values[i], points[i].number))
    ranked = [(fits[i], points[i]) for i in order if math.isfinite(fits[i])]
    best = order[0]
    return Pick(stage, points[best], incumbent, fits[best], fits[0], ranked)


def _chain(rows: list[TrialRow], stages: list[str], base: TrialRow) -> list[Pick]:
    """Each stage's pick, from the defaults on: a stage starts from the last pick that moved."""
    picks, incumbent = [], base
    for stage in stages:
        pick = stage_pick(rows, stage, incumbent)
        if pick is None:
            continue
        picks.append(pick)
        if pick.moves:
            incumbent = pick.best
    return picks


def incumbent_row(rows: list[TrialRow], stages: list[str]) -> TrialRow | None:
    """The trial whose parameters a stage after ``stages`` starts from: the last pick that
    moved, else Adam's defaults."""
    base = baseline_row(rows)
    if base is None:
        return None
    moved = [p.best for p in _chain(rows, stages, base) if p.moves]
    return moved[-1] if moved else base


def final_candidates(rows: list[TrialRow], stages: list[str], top: int) -> list[TrialRow]:
    """The parameter sets the final confirmation re-runs, ``top`` at most, distinct and other
    than the defaults: the stages' last incumbent first, then each stage's best point by the
    model (lowest fitted value first), then each stage's second best, and so on."""
    base = baseline_row(rows)
    if base is None:
        return []
    picks = _chain(rows, stages, base)
    moved = [p.best for p in picks if p.moves]
    ranks = [p.ranked for p in picks]
    ordered = [
        r
        for depth in range(max(map(len, ranks), default=0))
        for r in sorted((rk[depth] for rk in ranks if depth < len(rk)), key=lambda x: x[0])
    ]
    out: list[TrialRow] = []
    for row in [*moved[-1:], *(r for _, r in ordered)]:
        if row.params != base.params and all(row.params != o.params for o in out):
            out.append(row)
    return out[:top]


def select(
    rows: list[TrialRow], stages: list[str], confidence: float = 0.8, final: bool = True
) -> Selection:
    """Walk ``stages`` in order from Adam's defaults (each stage's pick by the model), then,
    ``final``, judge the confirmed candidates against the defaults on the extra seed slots."""
    base = baseline_row(rows)
    if base is None:
        return Selection(None, None, None)
    defaults = measured(rows, base)
    finite = tuple(v for v in defaults.values if math.isfinite(v))
    noise = stats.std(finite) if len(finite) >= 2 else None
    selection = Selection(defaults, defaults, noise)
    incumbent = defaults
    rerun = {r.confirms for r in rows if r.confirms is not None}
    for pick in _chain(rows, stages, base):
        # A stage is judged by the model: its values for the pick and the incumbent (slot 0)
        before = Measured(pick.incumbent.number, pick.incumbent.params, (pick.incumbent_fit,))  # type: ignore[arg-type]
        best = Measured(pick.best.number, pick.best.params, (pick.best_fit,))  # type: ignore[arg-type]
        rerun_pick = pick.best.number in rerun
        selection.decisions.append(Decision(pick.stage, before, best, 0.0, pick.moves, rerun_pick))
        if pick.moves:
            incumbent = measured(rows, pick.best)
    selection.winner = incumbent
    if not final or len(defaults.values) < 2:
        return selection
    searched = [r for r in rows if r.stage not in (BASELINE, NOISE, CONFIRM) and r.params]
    confirmed = [measured(rows, r) for r in searched if r.number in rerun]
    confirmed = [m for m in confirmed if len(m.values) > 1]  # re-runs that finished
    if confirmed:
        _judge(selection, defaults, confirmed, noise, confidence)
    return selection


def _judge(
    selection: Selection,
    defaults: Measured,
    confirmed: list[Measured],
    noise: float | None,
    confidence: float,
) -> None:
    """The winner of the confirmation: the confirmed candidate with the lowest mean on the
    extra slots, if it is lower than the defaults' there; ``overall`` says by how much it had
    to be lower to count as an established gain."""
    slots = min(len(defaults.values), *(len(m.values) for m in confirmed))
    # A candidate that diverged on any seed is never the winner.
    eligible = [m for m in confirmed if math.isfinite(m.on(slots).mean)]
    a = defaults.on(slots)
    if not eligible:
        selection.winner = defaults
        return
    best = min(eligible, key=lambda m: (m.on(slots).mean, m.trial))
    b = best.on(slots)
    each = 1 - (1 - confidence) / len(confirmed)  # every candidate had its chance
    needed = bar(noise, [a, *(m.on(slots) for m in confirmed)], each)
    if math.isfinite(a.mean) and b.mean >= a.mean:
        selection.winner = defaults
        return
    selection.winner = best
    selection.overall = Decision("overall", a, b, needed, beats(a, b, needed), slots > 1)


def verdict(selection: Selection) -> str:
    """``improved`` (beyond noise, all stages counted), ``within_noise`` (stages moved, but
    the gain over the defaults is not established) or ``kept_defaults`` (nothing moved)."""
    if selection.winner is selection.defaults:
        return "kept_defaults"
    if selection.overall is not None and not selection.overall.adopted:
        return "within_noise"
    return "improved"


# --- which runs are due ----------------------------------------------------------------------
def begun(rows: list[TrialRow]) -> set[int]:
    """The candidates whose re-runs began: one of them finished (it counts toward the budget)
    or is running; a killed or interrupted one is run again, and began nothing."""
    return {
        r.confirms
        for r in rows
        if r.stage == CONFIRM and r.confirms is not None and (finished(r) or r.state == "running")
    }


def _ran(rows: list[TrialRow], row: TrialRow, slot: int) -> bool:
    return any(r.confirms == row.number and r.slot == slot and finished(r) for r in rows)


def confirm_due(
    rows: list[TrialRow], stages: list[str], confirmation: Confirmation
) -> list[tuple[TrialRow, int]]:
    """The final confirmation's runs still to run, as (row, slot), slot by slot: the defaults,
    then the candidates (a batch too small for them all takes whole slots first)."""
    base = baseline_row(rows)
    if base is None or not confirmation.candidates:
        return []
    # A candidate whose re-runs began is confirmed to the end, whatever a later draw (of a
    # study raised since) did to the ranking: the new candidates take the places left.
    started = begun(rows)
    first = [r for r in rows if r.number in started]
    ranked = final_candidates(rows, stages, len(rows))
    rest = [r for r in ranked if all(r.params != b.params for b in first)]
    picked = (first + rest)[: max(confirmation.candidates, len(first))]
    if not picked:
        return []
    return [
        (row, slot)
        for slot in range(1, confirmation.slots + 1)
        for row in [base, *picked]
        if not _ran(rows, row, slot)
    ]
