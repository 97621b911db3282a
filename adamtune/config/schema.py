"""The config file: YAML in, validated and typed settings out.

Validation happens once, here, at the edge; everything downstream receives these frozen models.
Every problem becomes one line naming file, line and dotted key path, what was expected and what
arrived, e.g. ``config.yaml:7: search.space.lr.low: must be > 0 on a log scale (got 0)``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from adamtune.config.messages import format_errors
from adamtune.config.space import (
    SEARCHABLE,
    SpaceConfig,
    Strict,
)
from adamtune.config.storage_url import storage_problem
from adamtune.config.yamlfile import YamlDoc, dotted, read_yaml
from adamtune.errors import ConfigError

BUILTIN_SOURCES = (
    "digits",
    "iris",
    "wine",
    "breast_cancer",
    "diabetes",
    "synthetic-classification",
    "synthetic-regression",
)
BUILTIN_ARCHS = ("linear", "mlp", "cnn")
BUILTIN_METRICS = {"val_loss": "minimize", "accuracy": "maximize"}
RESERVED_STAGE_NAMES = ("defaults", "refine", "joint", "noise", "confirm", "local")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def is_import_path(text: str) -> bool:
    module, _, attr = text.partition(":")
    return bool(module) and bool(attr) and all(p.isidentifier() for p in module.split("."))


def builtin_or_import_path(v: str, builtins: tuple[str, ...], path: str) -> str:
    """``v`` when it names one of ``builtins`` or is an import path like ``path``."""
    if v in builtins or is_import_path(v):
        return v
    raise ValueError(f"expected one of {', '.join(builtins)} or '{path}' (got {v!r})")


class DataConfig(Strict):
    source: str
    target: str | None = None
    val_fraction: float = Field(0.2, gt=0, lt=1)
    standardize: bool = True
    batch_size: int = Field(64, ge=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # k-fold cross-validation: every trial trains on each of k splits; the objective is the
    # mean over folds (k times the cost; a noisier val split has to be small for it to pay)
    folds: int | None = Field(None, ge=2, le=20)

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v in BUILTIN_SOURCES or v.endswith((".csv", ".npz")) or is_import_path(v):
            return v
        raise ValueError(
            f"expected a builtin dataset ({', '.join(BUILTIN_SOURCES)}), a .csv or .npz file, "
            f"or 'package.module:function' (got {v!r})"
        )


class ModelConfig(Strict):
    arch: str = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [128, 128])
    channels: list[int] = Field(default_factory=lambda: [16, 32])
    dropout: float = Field(0.0, ge=0, lt=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        return builtin_or_import_path(v, BUILTIN_ARCHS, "package.module:Class")

    @field_validator("hidden", "channels")
    @classmethod
    def _positive_widths(cls, v: list[int]) -> list[int]:
        bad = [w for w in v if w < 1]
        if bad:
            raise ValueError(f"layer widths must be >= 1 (got {bad[0]})")
        return v


class TrainConfig(Strict):
    epochs: int = Field(20, ge=1)
    loss: Literal["auto", "cross_entropy", "mse", "bce", "l1"] = "auto"
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    objective: Literal["best", "last"] = "best"
    repeats: int = Field(1, ge=1)
    # Your own training function ("package.module:function"): it trains one trial as it likes
    # and reports the metric each epoch (``adamtune.TrainContext``).
    step: str | None = None
    # What a trial is judged on: val_loss, accuracy, or "package.module:function" computing a
    # number from the model's validation outputs and targets.
    metric: str = "val_loss"
    direction: Literal["auto", "minimize", "maximize"] = "auto"

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        return check_device(v)

    @field_validator("step")
    @classmethod
    def _step_path(cls, v: str | None) -> str | None:
        if v is not None and not is_import_path(v):
            raise ValueError(f"expected 'package.module:function' (got {v!r})")
        return v

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        return builtin_or_import_path(v, tuple(BUILTIN_METRICS), "package.module:function")

    @property
    def maximize(self) -> bool:
        """Whether a higher metric is better (the study's direction)."""
        if self.direction == "auto":
            return BUILTIN_METRICS.get(self.metric) == "maximize"
        return self.direction == "maximize"

    @property
    def metric_label(self) -> str:
        return metric_label(self.metric)


def sign_of_direction(maximize: bool) -> float:
    """-1 for a maximised metric, else 1: the factor between a metric as the study states it
    and adamtune's own values, which are "lower is better" everywhere."""
    return -1.0 if maximize else 1.0


def metric_label(metric: str) -> str:
    """A ``train.metric`` as output names it: ``val loss``, ``val accuracy``, ``val f1``."""
    name = metric.rpartition(":")[2].rpartition(".")[2]
    return "val loss" if name == "val_loss" else f"val {name}"


def check_device(v: str) -> str:
    if not _DEVICE.match(v):
        raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps (got {v!r})")
    return v


class StageConfig(Strict):
    params: list[
        Literal[
            "lr",
            "beta1",
            "beta2",
            "eps",
            "weight_decay",
            "amsgrad",
            "decoupled_weight_decay",
            "schedule",
        ]
    ]
    trials: int | None = Field(None, ge=1)
    name: str | None = None

    @field_validator("params")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must name at least one parameter")
        return list(dict.fromkeys(v))


class ConfirmConfig(Strict):
    """The final confirmation: the study's ``top`` best candidates and Adam's defaults are
    measured on ``seeds`` seeds in all (the search's own and ``seeds - 1`` extra ones) before
    one is called better; ``seeds: 1`` turns it off."""

    seeds: int = Field(4, ge=1, le=20)
    # At most (the confirmation takes a fifth of the budget); a total raised once it began
    # may add one each time: the candidates confirmed before stay
    top: int = Field(3, ge=1, le=10)
    confidence: float = Field(0.8, ge=0.5, lt=1)  # how sure a gain must be to move a parameter


class SearchConfig(Strict):
    strategy: Literal["staged", "joint"] = "staged"
    trials: int = Field(60, ge=1)
    timeout: float | None = Field(None, gt=0)
    sampler: Literal["tpe", "random", "qmc", "gp", "cmaes"] = "tpe"
    pruner: Literal["none", "median", "hyperband"] = "median"
    # auto: the fastest on CPU in benchmarks/README.md; batched trials match lone ones.
    batch: int | Literal["auto"] = "auto"
    storage: str | None = None

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, v: str | None) -> str | None:
        if v is not None:
            problem = storage_problem(v)
            if problem:
                raise ValueError(problem)
        return v

    space: SpaceConfig = Field(default_factory=lambda: SpaceConfig())
    stages: list[StageConfig] | None = None
    confirm: ConfirmConfig = Field(default_factory=lambda: ConfirmConfig())

    @field_validator("batch", mode="before")
    @classmethod
    def _batch(cls, v: Any) -> int | str:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError(f"must be a whole number >= 1 or 'auto' (got {v!r})")

    @model_validator(mode="after")
    def _something_to_search(self) -> SearchConfig:
        if not any(self.space.is_searched(p) for p in SEARCHABLE):
            raise ValueError("every parameter in search.space is fixed: nothing to search")
        return self

    @field_validator("stages")
    @classmethod
    def _some_stages(cls, stages: list[StageConfig] | None) -> list[StageConfig] | None:
        if stages is not None and not stages:
            raise ValueError("give at least one stage, or leave stages out")
        return stages


class Config(Strict):
    name: str | None = None
    seed: int = Field(0, ge=0, le=2**32 - 1)
    data: DataConfig
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    train: TrainConfig = Field(default_factory=lambda: TrainConfig())
    search: SearchConfig = Field(default_factory=lambda: SearchConfig())

    @field_validator("name")
    @classmethod
    def _usable_name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v


class Settings(BaseModel):
    """A validated config plus where it came from (for relative paths and messages)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: Config
    path: Path
    study_name: str
    doc: YamlDoc

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def problem(self, key: str, message: str) -> ConfigError:
        """A ConfigError about dotted ``key`` that names file and line, for checks made later
        than validation (a CSV without its target column, a model that cannot be built)."""
        return ConfigError(f"{self.doc.where(tuple(key.split('.')))}: {key}: {message}")


def validate_config(doc: YamlDoc) -> Config:
    if doc.data is None:
        raise ConfigError(f"{doc.source}: the config is empty; it needs at least data.source")
    if not isinstance(doc.data, dict):
        kind = type(doc.data).__name__
        raise ConfigError(f"{doc.source}:1: the config must be a mapping of keys (got a {kind})")
    try:
        config = Config.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, doc, Config)) from None
    problems = [
        f"{doc.where(path)}: {dotted(path)}: {message}" for path, message in _cross_checks(config)
    ]
    if problems:
        raise ConfigError(problems)
    return config


def _cross_checks(config: Config) -> list[tuple[tuple[str | int, ...], str]]:
    """Settings that are valid alone but contradict another, or would be silently ignored."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    search, data = config.search, config.data
    names: list[str] = []
    for i, stage in enumerate(search.stages or []):
        fixed = [p for p in stage.params if not search.space.is_searched(p)]
        if fixed:
            found.append(
                (
                    ("search", "stages", i, "params"),
                    f"searches {', '.join(fixed)}, which search.space fixes",
                )
            )
        name = stage.name or "+".join(stage.params)
        if name in RESERVED_STAGE_NAMES:
            found.append(
                (
                    ("search", "stages", i, "name"),
                    f"{name!r} is reserved; choose another stage name",
                )
            )
        elif name in names:
            found.append(
                (
                    ("search", "stages", i),
                    f"a second stage named {name!r}; give it a distinct name:",
                )
            )
        names.append(name)
    if search.stages is not None and search.strategy == "joint":
        found.append((("search", "stages"), "stages apply to strategy: staged, not joint"))
    if data.target is not None and not data.source.endswith(".csv"):
        found.append((("data", "target"), "only a CSV source has a target column"))
    takes_kwargs = data.source.startswith("synthetic-") or ":" in data.source
    if data.kwargs and not takes_kwargs:
        found.append(
            (
                ("data", "kwargs"),
                f"{data.source} takes no kwargs (synthetic data and your own function do)",
            )
        )
    if data.folds is not None:
        if "val_fraction" in data.model_fields_set:
            found.append(
                (("data", "val_fraction"), "folds decide the val splits; give one or the other")
            )
        if is_import_path(data.source):
            found.append(
                (
                    ("data", "folds"),
                    "your function returns its own (train, val) split; folds need data that "
                    "adamtune splits (a builtin dataset, a .csv or .npz file)",
                )
            )
    if "random_state" in data.kwargs:
        found.append((("data", "kwargs", "random_state"), "set seed: instead"))
    found += _train_checks(config)
    return found


def _train_checks(config: Config) -> list[tuple[tuple[str | int, ...], str]]:
    """What your own training function or metric cannot combine with."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    train = config.train
    builtin = BUILTIN_METRICS.get(train.metric)
    if train.direction == "auto" and builtin is None:
        found.append(
            (("train", "direction"), "give minimize or maximize for your own metric function")
        )
    elif builtin is not None and train.direction not in ("auto", builtin):
        found.append((("train", "direction"), f"{train.metric} is always {builtin}d"))
    if train.step is None:
        return found
    fixed = "your train.step function trains one seed on one split per trial"
    if train.repeats > 1:
        found.append((("train", "repeats"), f"{fixed}; leave repeats at 1"))
    if config.data.folds is not None:
        found.append((("data", "folds"), f"{fixed}; leave folds out"))
    if train.precision != "fp32":
        found.append(
            (
                ("train", "precision"),
                "your train.step function chooses its own precision (autocast); leave fp32",
            )
        )
    return found


def load_config(path: str | Path) -> Settings:
    """Read and validate a config file. Raises ConfigError listing every problem found."""
    path = Path(path)
    return settings_of(read_yaml(path), path, path.stem)


def settings_of(doc: YamlDoc, path: Path, default_name: str) -> Settings:
    """Validated settings of a read config document; the study is named by ``name:``, else
    ``default_name``."""
    config = validate_config(doc)
    return Settings(
        config=config, path=path.resolve(), study_name=config.name or default_name, doc=doc
    )
