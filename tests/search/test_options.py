"""``SearchOptions``: one options model, checked when it is made, for the CLI and the API."""

from __future__ import annotations

import pytest

from adamtune.errors import OptionError
from adamtune.search.options import SearchOptions, check_option


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"trials": 0}, "trials: must be a whole number >= 1 (got 0)"),
        ({"timeout": -1.0}, "timeout: must be a number of seconds > 0 (got -1.0)"),
        ({"batch": "fast"}, "batch: must be a whole number >= 1 or 'auto' (got 'fast')"),
        ({"take_over": "yes"}, "take_over: must be True or False (got 'yes')"),
        ({"heartbeat": 0}, "heartbeat: must be a whole number of seconds >= 1 (got 0)"),
    ],
)
def test_a_bad_option_is_named_as_the_api_spells_it(given: dict, message: str) -> None:
    with pytest.raises(OptionError) as info:
        SearchOptions(storage="sqlite:///x.db", **given)
    assert str(info.value) == message
    flag = "--" + message.replace("take_over", "take-over")
    assert info.value.as_flag() == flag  # what the CLI prints


def test_the_study_name_is_the_api_s_study() -> None:
    with pytest.raises(OptionError, match="^study: must be a study name"):
        SearchOptions(storage="sqlite:///x.db", study_name=3)  # type: ignore[arg-type]
    assert (
        SearchOptions(storage="sqlite:///x.db", batch="auto", trials=5).by_api_name()["trials"] == 5
    )
    check_option("batch", None)  # unset is always fine
