"""Trial rows: filtered by stage and state, sorted three ways, bad choices named."""

from __future__ import annotations

import pytest

from adamtune.errors import OptionError
from adamtune.search.rows import TrialRow, filter_rows, finite_or_none


def _rows() -> list[TrialRow]:
    return [
        TrialRow(0, "defaults", "complete", None, 0.5, 3),
        TrialRow(1, "lr", "pruned", None, None, 3),
        TrialRow(2, "lr", "complete", None, 0.3, 3),
        TrialRow(3, "betas", "complete", None, 0.4, 3),
    ]


def test_rows_filter_and_sort() -> None:
    rows = _rows()
    assert [r.number for r in filter_rows(rows, stages=["lr"])] == [1, 2]
    assert [r.number for r in filter_rows(rows, states=["complete"], sort="value")] == [2, 3, 0]
    assert [r.number for r in filter_rows(rows, sort="value")] == [2, 3, 0, 1]  # no value: last
    assert [r.number for r in filter_rows(rows[::-1], sort="stage")] == [3, 1, 2, 0]


@pytest.mark.parametrize(
    ("kwargs", "start"),
    [
        ({"states": ["done"]}, "state: expected one of complete"),
        ({"stages": ["eps"]}, "stage: no trial of stage 'eps' (stages: defaults, lr, betas)"),
        ({"sort": "lr"}, "sort: expected one of number, value, stage"),
    ],
)
def test_a_bad_choice_names_its_option(kwargs: dict, start: str) -> None:
    with pytest.raises(OptionError) as info:
        filter_rows(_rows(), **kwargs)
    assert str(info.value).startswith(start)


def test_values_for_json() -> None:
    assert finite_or_none(float("nan")) is None and finite_or_none(0.25) == 0.25
