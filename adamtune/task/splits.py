"""scikit-learn's bundled datasets and its ``train_test_split``, without importing scikit-learn.

Importing scikit-learn (and through it scipy) is ~0.8 s of every command that loads data: a
fifteenth of the quickstart, and a fixed cost that every ``--jobs`` worker pays again. Both
functions here give exactly what scikit-learn gives (tests/task/test_splits.py compares them array
for array, index for index), so studies resume and reproduce as before. They answer None
where they would have to guess (a file moved in another scikit-learn, sizes scikit-learn
refuses); the caller then asks scikit-learn itself, which keeps its messages.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import math
from pathlib import Path

import numpy as np

# Loader name -> file in sklearn/datasets/data: a CSV whose first row is "n_samples,
# n_features,target names..." and whose last column is the class (``load_csv_data``).
_CSV = {"iris": "iris.csv", "wine": "wine_data.csv", "breast_cancer": "breast_cancer.csv"}


def bundled(source: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``sklearn.datasets.load_<source>(return_X_y=True)``, read from its file, or None."""
    if source != "digits" and source not in _CSV:
        return None
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    try:
        if source == "digits":  # load_digits: no header, the class last
            with gzip.open(folder / "digits.csv.gz", "rt", encoding="utf-8") as fh:
                data = np.loadtxt(fh, delimiter=",")
            return data[:, :-1], data[:, -1].astype(int, copy=False)
        with (folder / _CSV[source]).open(encoding="utf-8", newline="") as fh:
            rows = csv.reader(fh)
            n_samples, n_features = (int(n) for n in next(rows)[:2])
            x = np.empty((n_samples, n_features))
            y = np.empty((n_samples,), dtype=int)
            for i, row in enumerate(rows):
                x[i] = np.asarray(row[:-1], dtype=np.float64)
                y[i] = int(row[-1])
        return x, y
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def split_indices(
    y: np.ndarray, val_fraction: float, seed: int, *, stratified: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """The (train, val) row indices of ``train_test_split(x, y, test_size=val_fraction,
    random_state=seed, stratify=y if stratified else None)``; None where scikit-learn
    would refuse the sizes."""
    n = len(y)
    if not 0 < val_fraction < 1:
        return None
    n_val = math.ceil(val_fraction * n)
    n_train = n - n_val
    if n_train <= 0:
        return None
    rng = np.random.RandomState(seed)
    if not stratified:  # ShuffleSplit
        order = rng.permutation(n)
        return order[n_val : n_val + n_train], order[:n_val]
    # StratifiedShuffleSplit: each class split in proportion, ties broken at random.
    classes, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
    if counts.min() < 2 or min(n_train, n_val) < len(classes):
        return None
    by_class = np.split(np.argsort(y_index, kind="stable"), np.cumsum(counts)[:-1])
    n_i = _approximate_mode(counts, n_train, rng)
    t_i = _approximate_mode(counts - n_i, n_val, rng)
    train: list[int] = []
    val: list[int] = []
    for i in range(len(classes)):
        rows = by_class[i].take(rng.permutation(counts[i]), mode="clip")
        train.extend(rows[: n_i[i]])
        val.extend(rows[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(val)


def _approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """How many of ``n_draws`` rows each class gets: its share, floored, then one more for
    the largest remainders (ties drawn with ``rng``), as scikit-learn's own."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)
