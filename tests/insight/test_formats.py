"""Results as text: every trial's parameters as pasteable Python, and plain JSON/YAML."""

from __future__ import annotations

import json

import yaml

from adamtune.insight.formats import spread_text, to_json, to_yaml, trials_torch_code
from adamtune.search.rows import TrialRow
from adamtune.train.params import ADAM_DEFAULTS, AdamParams


def test_every_trial_s_parameters_run_as_python() -> None:
    rows = [
        TrialRow(0, "defaults", "complete", ADAM_DEFAULTS, 0.5, 3),
        TrialRow(1, "lr", "pruned", AdamParams(lr=3e-3, amsgrad=True), None, 3),
        TrialRow(2, "lr", "failed", None, None, 3),  # no parameters recorded: left out
    ]
    namespace: dict = {}
    exec(trials_torch_code("s", rows), namespace)  # noqa: S102 - our own generated code
    params = namespace["ADAM_PARAMS"]
    assert set(params) == {0, 1}
    assert params[1]["lr"] == 3e-3 and params[1]["amsgrad"] is True
    assert params[0] == ADAM_DEFAULTS.torch_kwargs() | {"betas": (0.9, 0.999)}


def test_plain_data_round_trips_and_spread_reads_plainly() -> None:
    data = {"lr": 0.001, "betas": [0.9, 0.999], "schedule": None}
    assert json.loads(to_json(data)) == data and yaml.safe_load(to_yaml(data)) == data
    assert spread_text(0.0731, 0.0073, 3) == "0.0731 ± 0.0073 over 3 seeds"
