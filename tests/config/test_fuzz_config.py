"""Fuzzing the config: whatever YAML arrives, ``adamtune validate`` either accepts it (exit 0)
or refuses it with exit 2 and a line per problem, naming the file; never an unhandled
exception, never an "internal error", never a file written. Hypothesis mutates a valid config
(keys replaced by values of any type, removed, or added where they do not belong) and also
writes YAML of any shape. Derandomized, so CI sees the same examples on every run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from adamtune.cli import app

runner = CliRunner()

BASE: dict[str, Any] = {
    "name": "fuzz",
    "seed": 0,
    "data": {"source": "iris", "batch_size": 16},
    "model": {"arch": "mlp", "hidden": [8]},
    "train": {"epochs": 2},
    "search": {
        "trials": 5,
        "space": {
            "lr": {"low": 1e-4, "high": 1e-1},
            "beta1": {"low": 0.5, "high": 0.99},
            "amsgrad": [False, True],
        },
    },
}
# Every key a user may write, and the sections themselves.
PATHS = [
    "name",
    "seed",
    "data",
    "model",
    "train",
    "search",
    "data.source",
    "data.target",
    "data.val_fraction",
    "data.standardize",
    "data.batch_size",
    "data.folds",
    "model.arch",
    "model.hidden",
    "model.dropout",
    "model.kwargs",
    "train.epochs",
    "train.loss",
    "train.device",
    "train.precision",
    "train.objective",
    "train.repeats",
    "search.strategy",
    "search.trials",
    "search.timeout",
    "search.sampler",
    "search.pruner",
    "search.batch",
    "search.storage",
    "search.confirm",
    "search.confirm.seeds",
    "search.confirm.top",
    "search.confirm.confidence",
    "search.space",
    "search.space.lr",
    "search.space.lr.low",
    "search.space.lr.high",
    "search.space.lr.auto",
    "search.space.beta1",
    "search.space.beta1.low",
    "search.space.beta2",
    "search.space.eps",
    "search.space.weight_decay",
    "search.space.weight_decay.zero",
    "search.space.amsgrad",
    "search.space.decoupled_weight_decay",
    "search.space.schedule",
    "data.sourse",
    "search.space.beta3",
    "train.epochs.low",  # keys that do not exist
]
DELETE = object()
# No ':' in strings: "module:function" would import whatever module the example names.
TEXT = st.text(alphabet=st.characters(blacklist_characters=":\x00"), max_size=12)
WORDS = st.sampled_from(
    [
        "iris",
        "digits",
        "mlp",
        "cnn",
        "linear",
        "auto",
        "cpu",
        "none",
        "tpe",
        "median",
        "staged",
        "joint",
        "fp16",
        "best",
        "nothere.csv",
        "exponential",
        "cosine",
        "1e-3",
        "",
        "true",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(allow_nan=True),
    TEXT,
    WORDS,
    st.sampled_from([0, 1, 0.5, 0.999, 1.0, -1e-8, 1e-12, 1e9, 10**30]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["low", "high", "zero", "auto", "x"]), SCALARS, max_size=3),
)
SETTINGS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _put(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, key = path.split(".")
    node = config
    for name in parents:
        if not isinstance(node.get(name), dict):
            node[name] = {}
        node = node[name]
    if value is DELETE:
        node.pop(key, None)
    else:
        node[key] = value


def _validate(text: str, directory: Path) -> None:
    path = directory / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates: not UTF-8
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 2), (text, result.output, result.exception)
    if result.exit_code == 2:  # a line per problem: several at once are listed together
        lines = result.stderr.strip().splitlines()
        assert lines and lines[0].startswith(f"error: {path}"), (text, result.stderr)
        assert all(line.startswith(("error: ", "... ")) for line in lines), result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.output, text
    assert not (directory / "adamtune.db").exists()


@pytest.mark.slow
@SETTINGS
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(PATHS), st.one_of(st.just(DELETE), VALUES)), max_size=4
    )
)
def test_a_mutated_config_validates_or_exits_2_with_one_line(
    mutations: list[tuple[str, Any]], tmp_path: Path
) -> None:
    config = copy.deepcopy(BASE)
    for path, value in mutations:
        _put(config, path, value)
    _validate(yaml.safe_dump(config, sort_keys=False), tmp_path)


DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.one_of(WORDS, st.sampled_from(PATHS)), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.slow
@SETTINGS
@given(text=st.one_of(DOCUMENTS.map(yaml.safe_dump), TEXT))
def test_yaml_of_any_shape_validates_or_exits_2_with_one_line(text: str, tmp_path: Path) -> None:
    _validate(text, tmp_path)
