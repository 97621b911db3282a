"""Config validation: the defaults, the starter config, and one clear line per problem."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import pytest

from adamtune.config.schema import Config, load_config
from adamtune.errors import ConfigError

HEAD = "data:\n  source: iris\n"  # lines 1-2 of most configs below


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def test_minimal_config_gets_spec_defaults(write_config: Callable[..., Path]) -> None:
    settings = load_config(write_config("data: {source: digits}\n", file="minimal.yaml"))
    cfg = settings.config
    assert settings.study_name == "minimal"  # no name: the file's stem
    assert cfg.name is None and cfg.seed == 0
    assert (cfg.data.source, cfg.data.target, cfg.data.val_fraction) == ("digits", None, 0.2)
    assert cfg.data.standardize is True and cfg.data.batch_size == 64 and cfg.data.kwargs == {}
    assert (cfg.model.arch, cfg.model.hidden, cfg.model.dropout) == ("mlp", [128, 128], 0.0)
    train = cfg.train
    assert (
        train.epochs,
        train.loss,
        train.device,
        train.precision,
        train.objective,
        train.repeats,
    ) == (20, "auto", "auto", "fp32", "best", 1)
    search = cfg.search
    assert (
        search.strategy,
        search.trials,
        search.timeout,
        search.sampler,
        search.pruner,
        search.batch,
        search.storage,
        search.stages,
    ) == ("staged", 60, None, "tpe", "median", "auto", None, None)
    space = search.space
    assert (space.lr.low, space.lr.high) == (1e-5, 1e-1)
    assert (space.beta1.low, space.beta1.high) == (0.5, 0.999)
    assert (space.beta2.low, space.beta2.high) == (0.9, 0.9999)
    assert (space.eps.low, space.eps.high) == (1e-10, 1e-3)
    assert (space.weight_decay.low, space.weight_decay.high, space.weight_decay.zero) == (
        1e-6,
        1e-1,
        True,
    )
    assert space.amsgrad == [False, True]
    assert space.decoupled_weight_decay == [False]
    assert space.schedule == ["none"]  # the schedule stage is asked for by listing kinds
    assert [
        p
        for p in (
            "lr",
            "beta1",
            "beta2",
            "eps",
            "weight_decay",
            "amsgrad",
            "decoupled_weight_decay",
        )
        if space.is_searched(p)
    ] == ["lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad"]


def test_name_in_config_is_the_study_name(write_config: Callable[..., Path]) -> None:
    settings = load_config(write_config("name: my-run\n" + HEAD, file="other.yaml"))
    assert settings.study_name == "my-run"
    assert settings.path == settings.path.resolve()
    assert settings.base_dir == settings.path.parent


def test_starter_config_validates_and_states_the_defaults(tmp_path: Path) -> None:
    text = files("adamtune").joinpath("starter.yaml").read_text(encoding="utf-8")
    path = tmp_path / "starter.yaml"
    path.write_text(text)
    settings = load_config(path)
    assert settings.study_name == "my-study"
    # The starter spells the defaults out; it must not drift from them.
    assert settings.config == Config.model_validate(
        {"name": "my-study", "data": {"source": "digits"}}
    )


def test_exponent_floats_in_ranges(write_config: Callable[..., Path]) -> None:
    text = HEAD + "search:\n  space:\n    lr: {low: 1e-4, high: 3E-2}\n    eps: 1e-7\n"
    space = load_config(write_config(text)).config.search.space
    assert (space.lr.low, space.lr.high) == (1e-4, 3e-2)
    assert space.eps.fixed == 1e-7


def test_plain_number_fixes_a_parameter(write_config: Callable[..., Path]) -> None:
    text = HEAD + (
        "search:\n  space:\n    beta2: 0.999\n    lr: 1\n    weight_decay: 0\n"
        "    amsgrad: false\n    beta1: {low: 0.9, high: 0.9}\n"
    )
    space = load_config(write_config(text)).config.search.space
    assert space.beta2.fixed == 0.999 and space.beta2.low is None
    assert space.lr.fixed == 1.0
    assert space.weight_decay.fixed == 0.0
    assert space.amsgrad == [False]
    for param in ("beta2", "lr", "weight_decay", "amsgrad", "beta1"):
        assert not space.is_searched(param), param
    assert space.is_searched("eps")


# (id, yaml, line, dotted key, fragment of the message)
BAD: list[tuple[str, str, int, str, str]] = [
    (
        "misspelt-key",
        HEAD + "train:\n  epoch: 3\n",
        4,
        "train.epoch",
        "unknown key (did you mean 'epochs'?)",
    ),
    (
        "misspelt-space-key",
        HEAD + "search:\n  space:\n    lrr: 1e-3\n",
        5,
        "search.space.lrr",
        "did you mean 'lr'?",
    ),
    (
        "misspelt-stage-key",
        HEAD + "search:\n  stages:\n    - params: [lr]\n      trails: 3\n",
        6,
        "search.stages[0].trails",
        "did you mean 'trials'?",
    ),
    (
        "string-for-epochs",
        HEAD + "train:\n  epochs: ten\n",
        4,
        "train.epochs",
        "expected a whole number (got 'ten')",
    ),
    (
        "quoted-number-for-epochs",
        HEAD + 'train:\n  epochs: "20"\n',
        4,
        "train.epochs",
        "expected a whole number (got '20')",
    ),
    (
        "float-for-epochs",
        HEAD + "train:\n  epochs: 2.5\n",
        4,
        "train.epochs",
        "expected a whole number (got 2.5)",
    ),
    (
        "beta1-above-one",
        HEAD + "search:\n  space:\n    beta1: 1.5\n",
        5,
        "search.space.beta1",
        "must be >= 0 and < 1 (got 1.5)",
    ),
    (
        "beta2-one",
        HEAD + "search:\n  space:\n    beta2: 1.0\n",
        5,
        "search.space.beta2",
        "must be >= 0 and < 1 (got 1)",
    ),
    (
        "beta2-high-one",
        HEAD + "search:\n  space:\n    beta2:\n      low: 0.9\n      high: 1.0\n",
        7,
        "search.space.beta2.high",
        "must be >= 0 and < 1 (got 1)",
    ),
    (
        "eps-zero",
        HEAD + "search:\n  space:\n    eps: 0\n",
        5,
        "search.space.eps",
        "must be > 0 (got 0)",
    ),
    (
        "eps-low-zero",
        HEAD + "search:\n  space:\n    eps:\n      low: 0\n      high: 1e-3\n",
        6,
        "search.space.eps.low",
        "must be > 0 on a log scale (got 0)",
    ),
    (
        "lr-low-zero",
        HEAD + "search:\n  space:\n    lr:\n      low: 0\n      high: 1e-1\n",
        6,
        "search.space.lr.low",
        "must be > 0 on a log scale (got 0)",
    ),
    (
        "low-above-high",
        HEAD + "search:\n  space:\n    lr: {low: 1e-1, high: 1e-3}\n",
        5,
        "search.space.lr",
        "low (0.1) must not exceed high (0.001)",
    ),
    (
        "only-low",
        HEAD + "search:\n  space:\n    lr: {low: 1e-5}\n",
        5,
        "search.space.lr",
        "a range needs both low and high",
    ),
    (
        "fixed-and-range",
        HEAD + "search:\n  space:\n    lr: {fixed: 1e-3, low: 1e-5, high: 1}\n",
        5,
        "search.space.lr",
        "give either a fixed value or low/high, not both",
    ),
    (
        "empty-amsgrad",
        HEAD + "search:\n  space:\n    amsgrad: []\n",
        5,
        "search.space.amsgrad",
        "must list at least one choice (got an empty list)",
    ),
    (
        "negative-weight-decay",
        HEAD + "search:\n  space:\n    weight_decay: -0.1\n",
        5,
        "search.space.weight_decay",
        "must be >= 0 (got -0.1)",
    ),
    (
        "weight-decay-low-zero",
        HEAD + "search:\n  space:\n    weight_decay:\n      low: 0\n      high: 0.1\n",
        6,
        "search.space.weight_decay.low",
        "zero: true already tries 0",
    ),
    ("zero-trials", HEAD + "search:\n  trials: 0\n", 4, "search.trials", "must be >= 1 (got 0)"),
    ("negative-timeout", HEAD + "search:\n  timeout: -5\n", 4, "search.timeout", "must be > 0"),
    (
        "unknown-dataset",
        "data:\n  source: imagenet\n",
        2,
        "data.source",
        "expected a builtin dataset (digits, iris",
    ),
    (
        "unknown-arch",
        HEAD + "model:\n  arch: resnet\n",
        4,
        "model.arch",
        "expected one of linear, mlp, cnn or 'package.module:Class' (got 'resnet')",
    ),
    (
        "bad-device",
        HEAD + "train:\n  device: gpu\n",
        4,
        "train.device",
        "expected auto, cpu, cuda, cuda:N or mps (got 'gpu')",
    ),
    ("bad-cuda-index", HEAD + "train:\n  device: cuda:x\n", 4, "train.device", "(got 'cuda:x')"),
    (
        "bool-for-fraction",
        "data:\n  source: iris\n  val_fraction: true\n",
        3,
        "data.val_fraction",
        "expected a number (got True)",
    ),
    (
        "bool-for-epochs",
        HEAD + "train:\n  epochs: true\n",
        4,
        "train.epochs",
        "expected a whole number (got True)",
    ),
    ("yes-for-seed", "seed: yes\n" + HEAD, 1, "seed", "expected a whole number (got True)"),
    ("bool-for-lr", HEAD + "search:\n  space:\n    lr: true\n", 5, "search.space.lr", "(got True)"),
    (
        "lr-auto-and-low",
        HEAD + "search:\n  space:\n    lr: {auto: true, low: 1e-4}\n",
        5,
        "search.space.lr",
        "'auto' sets low and high from the range test; drop ['low']",
    ),
    ("lr-word", HEAD + "search:\n  space:\n    lr: fast\n", 5, "search.space.lr", "(got 'fast')"),
    (
        "schedule",
        HEAD + "search:\n  space:\n    schedule: [none, linear]\n",
        5,
        "search.space.schedule[1]",
        "expected one of 'none', 'exponential', 'cosine' or 'step' (got 'linear')",
    ),
    (
        "batch-zero",
        HEAD + "search:\n  batch: 0\n",
        4,
        "search.batch",
        "must be a whole number >= 1 or 'auto' (got 0)",
    ),
    (
        "batch-word",
        HEAD + "search:\n  batch: fast\n",
        4,
        "search.batch",
        "must be a whole number >= 1 or 'auto' (got 'fast')",
    ),
    (
        "batch-bool",
        HEAD + "search:\n  batch: true\n",
        4,
        "search.batch",
        "must be a whole number >= 1 or 'auto' (got True)",
    ),
    (
        "every-param-fixed",
        HEAD + "search:\n  space:\n    lr: 1e-3\n    beta1: 0.9\n"
        "    beta2: 0.999\n    eps: 1e-8\n    weight_decay: 0\n    amsgrad: false\n"
        "    schedule: none\n",
        3,
        "search",
        "every parameter in search.space is fixed: nothing to search",
    ),
    (
        "stage-searches-fixed",
        HEAD + "search:\n  space:\n    beta2: 0.999\n  stages:\n"
        "    - params: [lr]\n    - params: [beta1, beta2]\n",
        8,
        "search.stages[1].params",
        "searches beta2, which search.space fixes",
    ),
    (
        "stage-unknown-param",
        HEAD + "search:\n  stages:\n    - params: [momentum]\n",
        5,
        "search.stages[0].params[0]",
        "(got 'momentum')",
    ),
    (
        "empty-stages",
        HEAD + "search:\n  stages: []\n",
        4,
        "search.stages",
        "give at least one stage, or leave stages out",
    ),
    (
        "zero-width",
        HEAD + "model:\n  hidden: [16, 0]\n",
        4,
        "model.hidden",
        "layer widths must be >= 1 (got 0)",
    ),
    (
        "text-width",
        HEAD + "model:\n  hidden:\n    - 16\n    - wide\n",
        6,
        "model.hidden[1]",
        "expected a whole number (got 'wide')",
    ),
    ("unknown-loss", HEAD + "train:\n  loss: hinge\n", 4, "train.loss", "(got 'hinge')"),
    (
        "unknown-sampler",
        HEAD + "search:\n  sampler: bayes\n",
        4,
        "search.sampler",
        "expected one of 'tpe', 'random', 'qmc', 'gp' or 'cmaes' (got 'bayes')",
    ),
    (
        "val-fraction-one",
        "data:\n  source: iris\n  val_fraction: 1.0\n",
        3,
        "data.val_fraction",
        "must be < 1",
    ),
    ("data-not-mapping", "data: iris\n", 1, "data", "expected a mapping of keys (got 'iris')"),
    ("no-data", "seed: 3\n", 1, "data", "required key is missing"),
    ("empty-name", "name: '  '\n" + HEAD, 1, "name", "must not be empty"),
    ("nan-lr", HEAD + "search:\n  space:\n    lr: .nan\n", 5, "search.space.lr", "got nan"),
    (
        "inf-high",
        HEAD + "search:\n  space:\n    eps: {low: 1.0e-8, high: .inf}\n",
        5,
        "search.space.eps.high",
        "got inf",
    ),
    ("negative-seed", "seed: -1\n" + HEAD, 1, "seed", "must be >= 0"),
    (
        "storage-not-a-url",
        HEAD + "search:\n  storage: notaurl\n",
        4,
        "search.storage",
        "expected a database URL",
    ),
    (
        "storage-in-memory",
        HEAD + "search:\n  storage: 'sqlite://'\n",
        4,
        "search.storage",
        "would lose the study",
    ),
    (
        "duplicate-stage",
        HEAD + "search:\n  stages:\n    - params: [lr]\n    - params: [eps]\n    - params: [lr]\n",
        7,
        "search.stages[2]",
        "a second stage named 'lr'",
    ),
    (
        "reserved-stage",
        HEAD + "search:\n  stages:\n    - {params: [lr], name: defaults}\n",
        5,
        "search.stages[0].name",
        "'defaults' is reserved",
    ),
    (
        "reserved-local-stage",
        HEAD + "search:\n  stages:\n    - {params: [lr, beta1], name: local}\n",
        5,
        "search.stages[0].name",
        "'local' is reserved",
    ),
    (
        "joint-with-stages",
        HEAD + "search:\n  strategy: joint\n  stages:\n    - params: [lr]\n",
        5,
        "search.stages",
        "stages apply to strategy: staged",
    ),
    ("target-not-csv", HEAD + "  target: y\n", 3, "data.target", "only a CSV source"),
    (
        "kwargs-for-builtin",
        HEAD + "  kwargs: {n_samples: 5}\n",
        3,
        "data.kwargs",
        "iris takes no kwargs",
    ),
    (
        "random-state",
        "data:\n  source: synthetic-regression\n  kwargs: {random_state: 3}\n",
        3,
        "data.kwargs.random_state",
        "set seed: instead",
    ),
    ("step-not-a-path", HEAD + "train:\n  step: train.py\n", 4, "train.step", "package.module"),
    ("unknown-metric", HEAD + "train:\n  metric: f1\n", 4, "train.metric", "accuracy or"),
    (
        "metric-function-without-direction",
        HEAD + "train:\n  metric: 'mine:f1'\n",
        3,
        "train.direction",
        "give minimize or maximize",
    ),
    (
        "accuracy-minimized",
        HEAD + "train:\n  metric: accuracy\n  direction: minimize\n",
        5,
        "train.direction",
        "accuracy is always maximized",
    ),
    (
        "step-with-repeats",
        HEAD + "train:\n  step: 'mine:train'\n  repeats: 2\n",
        5,
        "train.repeats",
        "one seed on one split",
    ),
    (
        "step-with-fp16",
        HEAD + "train:\n  step: 'mine:train'\n  precision: fp16\n",
        5,
        "train.precision",
        "chooses its own precision",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_config_names_file_line_and_key(
    write_config: Callable[..., Path], text: str, line: int, key: str, fragment: str
) -> None:
    path = write_config(text, file="bad.yaml")
    problems = problems_of(path)
    assert len(problems) == 1, problems
    prefix = f"{path}:{line}: {key}: "
    assert problems[0].startswith(prefix), problems[0]
    assert fragment in problems[0].removeprefix(prefix)


def test_empty_yaml_file(write_config: Callable[..., Path]) -> None:
    path = write_config("", file="empty.yaml")
    assert problems_of(path) == [f"{path}: the config is empty; it needs at least data.source"]


def test_comment_only_yaml_file_is_empty(write_config: Callable[..., Path]) -> None:
    path = write_config("# nothing yet\n", file="empty.yaml")
    assert problems_of(path)[0].endswith("the config is empty; it needs at least data.source")


def test_yaml_that_is_a_list(write_config: Callable[..., Path]) -> None:
    path = write_config("- data\n- source\n", file="list.yaml")
    assert problems_of(path) == [f"{path}:1: the config must be a mapping of keys (got a list)"]


def test_yaml_that_is_a_scalar(write_config: Callable[..., Path]) -> None:
    path = write_config("iris\n", file="scalar.yaml")
    assert problems_of(path) == [f"{path}:1: the config must be a mapping of keys (got a str)"]


def test_every_problem_is_reported_one_line_each(write_config: Callable[..., Path]) -> None:
    text = (
        HEAD + "train:\n  epochs: 0\n  devise: cpu\nsearch:\n  trials: -1\n  space:\n    beta1: 2\n"
    )
    path = write_config(text, file="several.yaml")
    problems = problems_of(path)
    assert problems == [
        f"{path}:4: train.epochs: must be >= 1 (got 0)",
        f"{path}:5: train.devise: unknown key (did you mean 'device'?); expected one of "
        "epochs, loss, device, precision, objective, repeats, step, metric, direction",
        f"{path}:7: search.trials: must be >= 1 (got -1)",
        f"{path}:9: search.space.beta1: must be >= 0 and < 1 (got 2)",
    ]
    assert all("\n" not in p for p in problems)


def test_problems_in_different_sections_are_all_reported(
    write_config: Callable[..., Path],
) -> None:
    text = "dataa:\n  source: iris\nmodel:\n  arch: resnet\n"
    path = write_config(text, file="two.yaml")
    problems = problems_of(path)
    assert f"{path}:1: data: required key is missing" in problems
    assert any(
        p.startswith(f"{path}:1: dataa: unknown key (did you mean 'data'?)") for p in problems
    )
    assert any(p.startswith(f"{path}:4: model.arch: ") for p in problems)
    assert len(problems) == 3


def test_duplicate_key_in_config_file(write_config: Callable[..., Path]) -> None:
    path = write_config(HEAD + "train:\n  epochs: 3\n  epochs: 4\n", file="dup.yaml")
    problems = problems_of(path)
    assert problems == [f"{path}:5: train.epochs: duplicate key (first given on line 4); keep one"]


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems_of(path) == [f"{path}: config file not found"]


def test_config_errors_exit_with_code_2(write_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(HEAD + "train:\n  epochs: 0\n"))
    assert info.value.exit_code == 2


def test_problem_names_the_line_of_a_later_check(write_config: Callable[..., Path]) -> None:
    settings = load_config(write_config("seed: 1\ndata:\n  source: a.csv\n  target: label\n"))
    error = settings.problem("data.target", "column 'label' is not in a.csv")
    assert str(error) == f"{settings.doc.source}:4: data.target: column 'label' is not in a.csv"
    # A key the file does not contain points at its nearest parent.
    assert str(settings.problem("model.arch", "x")).startswith(f"{settings.doc.source}:1: ")
