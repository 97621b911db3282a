"""The study's results as plain data: the per-stage summary."""

from __future__ import annotations

from adamtune.insight.results import StageSummary


def test_a_stage_verdict_says_what_the_confirmation_made_of_its_pick() -> None:
    stage = StageSummary("local", 7, 0.08, 42)
    assert stage.confirmation_note == ""
    stage.confirmed = True
    assert stage.confirmation_note == ", confirmed"
    stage.won = True  # its pick is the study's winner, adopted by the stage's model or not
    assert stage.confirmation_note == ", won"
    assert stage.as_dict()["won"] is True
