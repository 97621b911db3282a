"""The tasks of ``quality.py``, and the plain torch pieces its peers and re-scoring share.

Nothing here imports adamtune: the data, the splits, the standardisation and the models are
written again from what adamtune's docs and configs promise, so that a winner is judged by
code that did not choose it. Every dataset is offline and deterministic: scikit-learn's
bundled copies, or arrays generated with a fixed ``random_state`` (handed to adamtune as an
``.npz`` file with arrays ``x`` and ``y``, which it reads as classes when ``y`` is integer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Task:
    name: str
    # digits | breast_cancer | diabetes | wine | iris: scikit-learn's bundled data (adamtune
    # reads them by name); moons | friedman: generated here, given to adamtune as an .npz file
    source: str
    arch: str  # linear | mlp | cnn
    batch_size: int
    epochs: int
    hidden: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()  # cnn: conv widths, each 3x3 + ReLU (+ 2x2 max-pool)
    dropout: float = 0.0
    loss: str = "cross_entropy"  # cross_entropy | mse
    val_fraction: float = 0.2
    # adamtune's data.standardize: features (and a regression target) scaled on train only
    standardize: bool = True
    space: dict[str, Any] = field(default_factory=dict)  # search.space overrides
    image: tuple[int, int, int] | None = None  # cnn input (C, H, W); rows arrive flat

    @property
    def classification(self) -> bool:
        return self.loss == "cross_entropy"

    @property
    def generated(self) -> bool:
        return self.source in GENERATORS


def _moons() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1000, noise=0.25, random_state=0)
    return x, y.astype(np.int64)


def _friedman() -> tuple[np.ndarray, np.ndarray]:
    """Friedman #1 (5 informative uniform features of 10, a sine, a square and linear terms),
    its target moved to the hundreds (mean ~290, std ~100) and left unstandardised."""
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=0)
    return x, 20.0 * y + 2.0


GENERATORS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "moons": _moons,
    "friedman": _friedman,
}

TASKS = {
    t.name: t
    for t in (
        Task("digits", "digits", "mlp", batch_size=64, epochs=20, hidden=(128, 128)),
        Task(
            "breast_cancer",
            "breast_cancer",
            "linear",
            batch_size=32,
            epochs=30,
            space={"weight_decay": {"low": 1.0e-5, "high": 1.0, "zero": True}},
        ),
        Task(
            "diabetes",
            "diabetes",
            "mlp",
            batch_size=32,
            epochs=40,
            hidden=(64,),
            dropout=0.1,
            loss="mse",
            val_fraction=0.25,
        ),
        Task("wine", "wine", "mlp", batch_size=16, epochs=40, hidden=(64,)),
        # adamtune's cnn on digits: each row is a (1, 8, 8) image; 8x8 -> 4x4 -> 2x2
        Task(
            "digits_cnn",
            "digits",
            "cnn",
            batch_size=128,
            epochs=12,
            channels=(8, 16),
            hidden=(32,),
            image=(1, 8, 8),
        ),
        Task("moons", "moons", "mlp", batch_size=64, epochs=30, hidden=(32, 32)),
        Task("iris", "iris", "mlp", batch_size=16, epochs=40, hidden=(32,), val_fraction=0.3),
        # a target in the hundreds, not standardised (nor are the [0, 1) features): MSE ~1e4
        Task(
            "friedman",
            "friedman",
            "mlp",
            batch_size=32,
            epochs=25,
            hidden=(64,),
            loss="mse",
            standardize=False,
        ),
    )
}


@functools.cache
def arrays(source: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole dataset as (x float64, y): integer classes or float targets."""
    if source in GENERATORS:
        x, y = GENERATORS[source]()
    else:
        from sklearn import datasets

        x, y = getattr(datasets, f"load_{source}")(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y)


def write_npz(task: Task, folder: Path) -> Path:
    """A generated task's data as adamtune reads an .npz (arrays x and y)."""
    x, y = arrays(task.source)
    path = folder / f"{task.source}.npz"
    np.savez(path, x=x, y=y)
    return path


def _standardise(train: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0  # digits' blank border pixels
    return (train - mean) / std, (val - mean) / std


@functools.lru_cache(maxsize=256)
def split(name: str, seed: int) -> tuple[Any, Any, Any, Any, int]:
    """Train/val tensors of task ``name`` split with ``random_state=seed`` (stratified for
    classes), scaled as adamtune scales them (features, and a regression target, on train
    only, when the task standardises), and the number of outputs."""
    import torch
    from sklearn.model_selection import train_test_split

    task = TASKS[name]
    x, y = arrays(task.source)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x,
        y,
        test_size=task.val_fraction,
        random_state=seed,
        stratify=y if task.classification else None,
    )
    if task.standardize:
        x_tr, x_va = _standardise(x_tr, x_va)
    if task.classification:
        classes = np.unique(y)
        t_tr = torch.as_tensor(np.searchsorted(classes, y_tr), dtype=torch.long)
        t_va = torch.as_tensor(np.searchsorted(classes, y_va), dtype=torch.long)
        out = len(classes)
    else:
        y_tr = np.asarray(y_tr, dtype=np.float64)[:, None]
        y_va = np.asarray(y_va, dtype=np.float64)[:, None]
        if task.standardize:
            y_tr, y_va = _standardise(y_tr, y_va)
        t_tr = torch.as_tensor(y_tr, dtype=torch.float32)
        t_va = torch.as_tensor(y_va, dtype=torch.float32)
        out = 1
    as_x = functools.partial(torch.as_tensor, dtype=torch.float32)
    return as_x(x_tr), t_tr, as_x(x_va), t_va, out


def build_model(task: Task, in_features: int, out: int) -> Any:
    """A freshly initialised model (seed torch first): the architecture adamtune builds for
    the task's ``model:`` (the same layers in the same order), written in plain torch."""
    from torch import nn

    def mlp(width: int) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for h in task.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if task.dropout > 0:
                layers.append(nn.Dropout(task.dropout))
            width = h
        return [*layers, nn.Linear(width, out)]

    if task.arch == "linear":
        return nn.Sequential(nn.Linear(in_features, out))
    if task.arch == "mlp":
        return nn.Sequential(*mlp(in_features))
    if task.arch != "cnn" or task.image is None:
        raise ValueError(f"{task.name}: no model for arch {task.arch!r}")
    c, h, w = task.image
    assert c * h * w == in_features, (task.image, in_features)
    layers: list[nn.Module] = [nn.Unflatten(1, task.image)]
    for width in task.channels:
        layers += [nn.Conv2d(c, width, kernel_size=3, padding=1), nn.ReLU()]
        if min(h, w) >= 4:  # pool while there is room, as adamtune does
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = width
    return nn.Sequential(*layers, nn.Flatten(), *mlp(c * h * w))


def loss_fn(task: Task) -> Callable[..., Any]:
    from torch.nn import functional

    return functional.cross_entropy if task.classification else functional.mse_loss


def adam_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """``torch.optim.Adam`` keyword arguments from a winner's params (betas as a tuple)."""
    return {**params, "betas": tuple(params["betas"])}
