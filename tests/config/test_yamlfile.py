"""YAML reading: exponent floats, duplicate keys, line numbers, and one-line syntax errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from adamtune.config.yamlfile import parse_yaml, read_yaml
from adamtune.errors import ConfigError

NESTED = """\
data:
  source: iris
search:
  space:
    lr:
      low: 1e-5
      high: 1e-1
    amsgrad: [false, true]
  stages:
    - params: [lr]
      trials: 5
    - params:
        - beta1
        - beta2
"""


def test_exponent_scalars_are_floats_on_purpose() -> None:
    doc = parse_yaml(
        'lr: 1e-3\nwd: 5E-4\nbig: -2e+3\nepochs: 60\nquoted: "1e-3"\n'
        "single: '5E-4'\ndotted: 1.0e-5\n",
        "cfg.yaml",
    )
    assert doc.data == {
        "lr": 1e-3,
        "wd": 5e-4,
        "big": -2000.0,
        "epochs": 60,
        "quoted": "1e-3",
        "single": "5E-4",
        "dotted": 1e-5,
    }
    assert type(doc.data["lr"]) is float
    assert type(doc.data["wd"]) is float
    assert type(doc.data["epochs"]) is int
    assert type(doc.data["quoted"]) is str


def test_exponent_floats_in_flow_mappings_and_lists() -> None:
    doc = parse_yaml("lr: {low: 1e-5, high: 1E-1}\ngrid: [1e-3, 3e-3, 10]\n", "cfg.yaml")
    assert doc.data == {"lr": {"low": 1e-5, "high": 0.1}, "grid": [1e-3, 3e-3, 10]}
    assert [type(v) for v in doc.data["grid"]] == [float, float, int]


def test_duplicate_key_names_file_line_and_dotted_path() -> None:
    text = "data:\n  source: iris\nsearch:\n  space:\n    lr: 1e-3\n    eps: 1e-8\n    lr: 1e-2\n"
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "cfg.yaml")
    message = str(info.value)
    assert message.startswith("cfg.yaml:7: search.space.lr: duplicate key")
    assert "first given on line 5" in message
    assert "\n" not in message


def test_duplicate_top_level_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("seed: 0\ndata: {source: iris}\nseed: 1\n", "cfg.yaml")
    assert str(info.value).startswith("cfg.yaml:3: seed: duplicate key (first given on line 1)")


def test_duplicate_key_inside_a_list_item_uses_the_config_path_style() -> None:
    text = "search:\n  stages:\n    - params: [lr]\n      params: [eps]\n"
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "cfg.yaml")
    assert str(info.value).startswith("cfg.yaml:4: search.stages[0].params: duplicate key")


def test_line_of_nested_keys_and_list_items() -> None:
    doc = parse_yaml(NESTED, "cfg.yaml")
    assert doc.line_of(()) == 1
    assert doc.line_of(("data",)) == 1
    assert doc.line_of(("data", "source")) == 2
    assert doc.line_of(("search", "space", "lr")) == 5
    assert doc.line_of(("search", "space", "lr", "low")) == 6
    assert doc.line_of(("search", "space", "lr", "high")) == 7
    assert doc.line_of(("search", "space", "amsgrad", 1)) == 8
    assert doc.line_of(("search", "stages", 0)) == 10
    assert doc.line_of(("search", "stages", 0, "trials")) == 11
    assert doc.line_of(("search", "stages", 1)) == 12
    assert doc.line_of(("search", "stages", 1, "params")) == 12
    assert doc.line_of(("search", "stages", 1, "params", 0)) == 13
    assert doc.line_of(("search", "stages", 1, "params", 1)) == 14


def test_line_of_falls_back_to_the_deepest_existing_prefix() -> None:
    doc = parse_yaml(NESTED, "cfg.yaml")
    assert doc.line_of(("search", "space", "eps", "low")) == 4  # no eps: the 'space' line
    assert doc.line_of(("search", "stages", 7, "params")) == 9
    assert doc.line_of(("train", "epochs")) == 1  # nothing matches: the document's first line


def test_where_formats_file_and_line() -> None:
    doc = parse_yaml(NESTED, "configs/cfg.yaml")
    assert doc.where(("search", "space", "lr", "low")) == "configs/cfg.yaml:6"
    assert doc.where(("search", "stages", 1, "params", 1)) == "configs/cfg.yaml:14"


def test_empty_document_has_no_data_and_no_lines() -> None:
    doc = parse_yaml("# only a comment\n", "cfg.yaml")
    assert doc.data is None
    assert doc.line_of(("data",)) is None
    assert doc.where(("data",)) == "cfg.yaml"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("data:\n  source: [iris, wine\nseed: 0\n", 3),
        ("data:\n\tsource: iris\n", 2),
        ("data: source: iris\n", 1),
        ("seed: 0\ndata: *nowhere\n", 2),
        ("seed: 0\nname: 'unclosed\n", 3),
        ("seed: 0\n---\nseed: 1\n", 2),
    ],
    ids=[
        "unclosed-list",
        "tab",
        "nested-colon",
        "undefined-alias",
        "unclosed-quote",
        "two-documents",
    ],
)
def test_invalid_yaml_is_one_line_with_file_and_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "cfg.yaml")
    message = str(info.value)
    assert message.startswith(f"cfg.yaml:{line}: not valid YAML: ")
    assert "\n" not in message
    assert "Traceback" not in message
    assert 'File "' not in message
    assert info.value.problems == [message]
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_keys_must_be_plain_names() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("seed: 0\n[a, b]: 1\n", "cfg.yaml")
    assert str(info.value) == "cfg.yaml:2: keys must be plain names"


def test_python_tags_never_build_objects() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("seed: !!python/object:os.system x\n", "cfg.yaml")
    assert str(info.value).startswith("cfg.yaml:1: not valid YAML: ")
    # On a collection the tag is not honoured either: what comes back is plain data.
    doc = parse_yaml("seed: !!python/object/apply:os.system [echo hi]\n", "cfg.yaml")
    assert doc.data == {"seed": ["echo hi"]}


def test_anchors_and_aliases_are_resolved() -> None:
    doc = parse_yaml("hidden: &h [32, 32]\nmodel:\n  hidden: *h\n", "cfg.yaml")
    assert doc.data == {"hidden": [32, 32], "model": {"hidden": [32, 32]}}


def test_merge_keys_are_valid_yaml() -> None:
    doc = parse_yaml("base: &b {low: 1e-5, high: 1e-1}\nlr:\n  <<: *b\n  high: 1e-2\n", "cfg.yaml")
    assert doc.data["lr"] == {"low": 1e-5, "high": 1e-2}


def test_read_yaml_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert str(info.value) == f"{path}: config file not found"


def test_read_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("data:\n  source: iris\n  source: wine\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert str(info.value).startswith(f"{path}:3: data.source: duplicate key")
