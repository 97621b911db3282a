"""Datasets: scikit-learn's bundled copies, synthetic ones, CSV and NPZ files, or user code.

Everything ends up as a train/val pair of tensors (or, for user code that returns torch
Datasets, a pair of Datasets). The validation split is fixed by the config's seed, and
standardisation is fitted on the training split only, so nothing of val leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from adamtune.config.schema import DataConfig, Settings
from adamtune.task.sources import builtin_arrays, read_csv, read_npz
from adamtune.task.splits import split_indices
from adamtune.task.user_code import load_callable

Kind = Literal["classification", "regression", "binary"]
IMAGE_SHAPES = {"digits": (1, 8, 8)}


@dataclass
class TensorSplit:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


Split = TensorSplit | Dataset


@dataclass
class TaskData:
    """A train/val pair plus what a model and a loss need to know about it."""

    train: Split
    val: Split
    kind: Kind
    in_shape: tuple[int, ...]
    out_features: int
    source: str

    @property
    def description(self) -> str:
        what = (
            f"{self.kind}, {self.out_features} classes"
            if self.kind == "classification"
            else (self.kind)
        )
        return (
            f"{self.source}: {self.n_train} train / {self.n_val} val rows, "
            f"input {self.in_shape}, {what}"
        )

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, TensorSplit)

    @property
    def n_train(self) -> int:
        return len(self.train)  # type: ignore[arg-type]

    @property
    def n_val(self) -> int:
        return len(self.val)  # type: ignore[arg-type]


def _kind_of(y: np.ndarray, loss: str) -> Kind:
    """Classification for integer, boolean or text labels, binary for 0/1 columns (several
    at once: multi-label), else regression; an explicit numeric loss makes it regression."""
    if loss in ("mse", "l1"):
        return "regression"
    if loss == "bce":
        return "binary"
    if y.ndim == 2 and y.dtype.kind in "iubf" and np.isin(y, (0, 1)).all():
        return "binary"  # several 0/1 columns: multi-label, whatever their dtype
    if y.dtype.kind in "iubUSO":
        return "classification"
    return "regression"


def _check_targets(y: np.ndarray, kind: Kind, settings: Settings) -> None:
    loss = settings.config.train.loss
    if kind == "binary" and not np.isin(y, (0, 1)).all():
        raise settings.problem(
            "train.loss",
            f"bce needs targets that are 0 or 1 (got values from {y.min()} to "
            f"{y.max()}); use cross_entropy for classes or mse for numbers",
        )
    if loss == "cross_entropy" and kind != "classification":
        raise settings.problem("train.loss", "cross_entropy needs integer or text class labels")
    if kind == "classification" and y.ndim > 1:
        raise settings.problem(
            "data.source",
            f"class labels must be one per row (got targets of shape {y.shape}); "
            f"for multi-label data give 0/1 columns",
        )
    if kind != "classification" and y.dtype.kind in "USO":
        raise settings.problem("train.loss", f"{loss} needs numeric targets (got text labels)")


def _split(x: np.ndarray, y: np.ndarray, cfg: DataConfig, seed: int, kind: Kind):
    stratify = None
    if kind == "classification":
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            stratify = y
    found = split_indices(y, cfg.val_fraction, seed, stratified=stratify is not None)
    if found is not None:  # scikit-learn's split, drawn without importing it
        train, val = found
        return x[train], x[val], y[train], y[val]
    from sklearn.model_selection import train_test_split  # it says why it cannot

    return train_test_split(x, y, test_size=cfg.val_fraction, random_state=seed, stratify=stratify)


def _standardize(train: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0, keepdims=True)
    std = train.std(axis=0, keepdims=True)
    std[std == 0] = 1.0  # constant features (digits' blank border pixels) stay constant
    return (train - mean) / std, (val - mean) / std


def _as_targets(y: np.ndarray, kind: Kind) -> torch.Tensor:
    if kind == "classification":
        return torch.as_tensor(y, dtype=torch.long)
    t = torch.as_tensor(y, dtype=torch.float32)
    return t.unsqueeze(1) if t.ndim == 1 else t


def _folds(x: np.ndarray, y: np.ndarray, k: int, seed: int, kind: Kind):
    """k train/val splits whose val parts partition the rows (stratified for classes)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if kind == "classification" and np.unique(y, return_counts=True)[1].min() >= k:
        splitter: Any = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    for train, val in splitter.split(x, y):
        yield x[train], x[val], y[train], y[val]


def _from_arrays(
    x: np.ndarray, y: np.ndarray, settings: Settings, source: str, seed: int
) -> list[TaskData]:
    """One train/val split of the rows, or ``data.folds`` of them, drawn with ``seed``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    if x.ndim < 2 or len(x) != len(y):
        raise settings.problem(
            "data.source",
            f"expected x of shape (rows, features...) and y with as many rows "
            f"(got x {x.shape}, y {y.shape})",
        )
    cfg = settings.config.data
    kind = _kind_of(y, settings.config.train.loss)
    _check_targets(y, kind, settings)  # before splitting: a bad target breaks stratification
    key = "data.folds" if cfg.folds else "data.val_fraction"
    try:
        if cfg.folds:
            splits = list(_folds(x, y, cfg.folds, seed, kind))
        else:
            splits = [_split(x, y, cfg, seed, kind)]
    except ValueError as exc:
        raise settings.problem(key, f"cannot split {len(x)} rows: {exc}") from None
    return [
        _assemble(x_tr, y_tr, x_va, y_va, settings, source) for x_tr, x_va, y_tr, y_va in splits
    ]


def _assemble(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    settings: Settings,
    source: str,
) -> TaskData:
    """Check, standardise (fitted on train only) and turn a split into tensors."""
    if len(x_tr) == 0 or len(x_va) == 0:
        raise settings.problem("data.val_fraction", "leaves an empty train or val split")
    if x_tr.shape[1:] != x_va.shape[1:]:
        raise settings.problem(
            "data.source",
            f"train and val inputs differ in shape ({x_tr.shape[1:]} vs {x_va.shape[1:]})",
        )
    y_all = np.concatenate([y_tr, y_va])
    kind = _kind_of(y_all, settings.config.train.loss)
    _check_targets(y_all, kind, settings)
    for name, arr in (("inputs", np.concatenate([x_tr, x_va])), ("targets", y_all)):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise settings.problem("data.source", f"{bad} {name} are NaN or infinite")
    out = 0
    if kind == "classification":
        # Classes become 0..K-1 in sorted order, whatever the labels were (text, 1..K, years).
        classes = np.unique(y_all)
        y_tr, y_va, out = (
            np.searchsorted(classes, y_tr),
            np.searchsorted(classes, y_va),
            len(classes),
        )
    shape = x_tr.shape[1:]
    if settings.config.data.standardize:
        flat_tr, flat_va = _standardize(x_tr.reshape(len(x_tr), -1), x_va.reshape(len(x_va), -1))
        x_tr, x_va = flat_tr.reshape(-1, *shape), flat_va.reshape(-1, *shape)
        if kind == "regression":
            y_tr, y_va = _standardize(y_tr.reshape(len(y_tr), -1), y_va.reshape(len(y_va), -1))
    train = TensorSplit(torch.as_tensor(x_tr, dtype=torch.float32), _as_targets(y_tr, kind))
    val = TensorSplit(torch.as_tensor(x_va, dtype=torch.float32), _as_targets(y_va, kind))
    out = out or int(train.y.shape[1])
    in_shape = IMAGE_SHAPES.get(source, tuple(int(s) for s in shape))
    return TaskData(train, val, kind, in_shape, out, source)


def _user_split(part: Any, name: str) -> Dataset | tuple[np.ndarray, np.ndarray]:
    if isinstance(part, Dataset):
        return part
    if isinstance(part, (tuple, list)) and len(part) == 2:
        x, y = (
            v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in part
        )
        if len(x) != len(y):
            raise ValueError(f"{name} has {len(x)} inputs but {len(y)} targets")
        return x.astype(np.float64), y
    raise TypeError(f"{name} must be an (x, y) pair or a torch Dataset (got {type(part).__name__})")


def _dataset_task(train: Dataset, val: Dataset, settings: Settings) -> TaskData:
    """User Datasets are used as they are (no standardisation); sizes come from the items."""
    loss = settings.config.train.loss
    x0, y0 = train[0]
    y0 = torch.as_tensor(y0)
    kind: Kind
    if loss == "bce":
        kind, out = "binary", int(y0.numel())
    elif loss in ("mse", "l1") or (y0.is_floating_point() and loss != "cross_entropy"):
        kind, out = "regression", int(y0.numel())
    else:
        kind = "classification"
        # torchvision's convention (a classes list) spares reading every item to count them.
        classes = getattr(train, "classes", None)
        if classes is not None:
            out = len(classes)
        else:
            sized: list[Any] = [train, val]
            labels = [int(torch.as_tensor(part[i][1])) for part in sized for i in range(len(part))]
            out = max(labels) + 1
    return TaskData(
        train, val, kind, tuple(torch.as_tensor(x0).shape), out, settings.config.data.source
    )


def _from_function(settings: Settings) -> TaskData:
    cfg = settings.config.data
    fn = load_callable(settings, "data.source", cfg.source)
    try:
        result = fn(**cfg.kwargs)
    except Exception as exc:  # the user's code may fail in any way
        raise settings.problem(
            "data.source", f"{cfg.source} raised {type(exc).__name__}: {exc}"
        ) from None
    try:
        train, val = result
        train, val = _user_split(train, "train"), _user_split(val, "val")
    except (TypeError, ValueError) as exc:
        raise settings.problem(
            "data.source", f"{cfg.source} must return (train, val): {exc}"
        ) from None
    if isinstance(train, Dataset) and isinstance(val, Dataset):
        return _dataset_task(train, val, settings)
    if isinstance(train, Dataset) or isinstance(val, Dataset):
        raise settings.problem("data.source", "train and val must both be Datasets or both pairs")
    return _assemble(train[0], train[1], val[0], val[1], settings, cfg.source)


def load_data(settings: Settings) -> TaskData:
    """Build the train/val data the config describes (its first fold, with ``data.folds``).
    Raises ConfigError naming data.* keys."""
    return load_splits(settings)[0]


def load_splits(settings: Settings, split_seed: int | None = None) -> list[TaskData]:
    """Every train/val split a trial trains on: one, or ``data.folds``, drawn with
    ``split_seed`` (default: the config's seed). Data from your own function keeps the split
    it returns. Raises ConfigError naming data.* keys."""
    seed = settings.config.seed if split_seed is None else split_seed
    cfg = settings.config.data
    source = cfg.source
    if source.endswith((".csv", ".npz")):
        path = (settings.base_dir / source) if not Path(source).is_absolute() else Path(source)
        if path.is_dir():
            raise settings.problem("data.source", f"{path} is a directory, not a data file")
        if not path.is_file():
            raise settings.problem("data.source", f"file not found: {path}")
        try:
            x, y = (
                read_csv(path, cfg.target, settings)
                if source.endswith(".csv")
                else read_npz(path, settings)
            )
        except OSError as exc:
            raise settings.problem("data.source", f"cannot read {path}: {exc}") from None
        except ValueError as exc:
            raise settings.problem("data.source", f"cannot read {path}: {exc}") from None
        splits = _from_arrays(x, y, settings, path.name, seed)
    elif ":" in source:
        splits = [_from_function(settings)]
    else:
        x, y = builtin_arrays(settings)
        splits = _from_arrays(x, y, settings, source, seed)
    rows = min(d.n_train for d in splits)
    if cfg.batch_size > rows:
        raise settings.problem(
            "data.batch_size", f"must not exceed the {rows} training rows (got {cfg.batch_size})"
        )
    return splits
