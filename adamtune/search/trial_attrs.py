"""What adamtune records on each trial of a study (Optuna user attributes): every key, in one
place, and the records a trial gets when it is asked, when it is re-run on another seed slot,
and when it ends. Readers (``study.stage_of``, ``rows.row_of``) use the same keys."""

from __future__ import annotations

from typing import Any

from adamtune.config.schema import sign_of_direction

STAGE = "stage"  # the stage the trial belongs to (defaults, lr, ..., noise, confirm)
ADAM = "adam"  # its full parameter set, as ``AdamParams.as_dict``
WORKER = "worker"  # host:pid of the worker that ran it
BATCH = "batch"  # how many trials trained together with it
STATUS = "status"  # complete | pruned | diverged | failed | oom | interrupted
REASON = "reason"  # why it stopped early: diverged | oom | interrupted
ERROR = "error"  # what it raised
EPOCHS = "epochs"
SECONDS = "seconds"
VAL_CURVE = "val_curve"
TRAIN_CURVE = "train_curve"
SLOT = "slot"  # the seed slot of a re-run (0, absent, for the search's own)
CONFIRMS = "confirms"  # the trial a re-run measures again
OF = "of"  # the budget a re-run uses (the confirmation's)
RETRY_OF = "retry_of"  # the trial whose worker died, drawn again
# On a draw made after the confirmation began: the candidates that raises of the total had
# added to the confirmation by then (plan.resumed)
REOPENED = "reopened"
# Present (True) when the study maximises its metric: a trial's value then reads without its
# study (adamtune's own comparisons use "lower is better", ``rows.loss_of``).
MAXIMIZED = "maximized"

INTERRUPTED = {STATUS: "interrupted", REASON: "interrupted"}


def asked(
    stage: str, adam: dict[str, Any], worker: str, batch: int, maximized: bool = False
) -> dict[str, Any]:
    """A trial's records when it is asked (``batch`` > 1: it trains beside others)."""
    attrs: dict[str, Any] = {STAGE: stage, ADAM: adam, WORKER: worker}
    if batch > 1:
        attrs[BATCH] = batch
    if maximized:
        attrs[MAXIMIZED] = True
    return attrs


def sign_of(user_attrs: dict[str, Any]) -> float:
    """-1 for a trial of a study that maximises its metric, else 1: the factor between its
    stored values and adamtune's own "lower is better" ones."""
    return sign_of_direction(bool(user_attrs.get(MAXIMIZED)))


def rerun(stage: str, slot: int, confirms: int, of: str, retry_of: int | None) -> dict[str, Any]:
    """A re-run's records: trial ``confirms`` measured again on seed slot ``slot``."""
    attrs: dict[str, Any] = {STAGE: stage, SLOT: slot, CONFIRMS: confirms, OF: of}
    if retry_of is not None:
        attrs[RETRY_OF] = retry_of
    return attrs


def failed(error: str, *, oom: bool = False) -> dict[str, Any]:
    """A trial that raised (``oom``: out of memory)."""
    if oom:
        return {STATUS: "oom", REASON: "oom", ERROR: error}
    return {STATUS: "failed", ERROR: error}


def ended(
    status: str,
    epochs: int,
    seconds: float,
    val_curve: list[float | None],
    train_curve: list[float | None],
) -> dict[str, Any]:
    """A trained trial's records: how it ended and its learning curves."""
    attrs: dict[str, Any] = {
        STATUS: status,
        EPOCHS: epochs,
        SECONDS: round(seconds, 4),
        VAL_CURVE: val_curve,
        TRAIN_CURVE: train_curve,
    }
    if status == "diverged":
        attrs[REASON] = "diverged"
    return attrs


def is_rerun(user_attrs: dict[str, Any]) -> bool:
    """Whether a trial re-runs another on a fresh seed slot (its value is not comparable with
    the search's own trials)."""
    return CONFIRMS in user_attrs
