"""Where a dataset's arrays come from: scikit-learn's bundled copies and generators, CSV
files (a target column named in the config) and .npz files (arrays ``x`` and ``y``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from adamtune.config.schema import Settings
from adamtune.task.splits import bundled


def builtin_arrays(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    source, seed, kwargs = (
        settings.config.data.source,
        settings.config.seed,
        settings.config.data.kwargs,
    )
    try:
        return bundled_arrays(source, seed, kwargs)
    except (TypeError, ValueError) as exc:
        raise settings.problem("data.kwargs", f"{source} refused them: {exc}") from None


def sklearn_arrays(source: str, seed: int, kwargs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if source == "synthetic-classification":
        opts: dict[str, Any] = {
            "n_samples": 2000,
            "n_features": 20,
            "n_informative": 10,
            "n_classes": 3,
        }
        return datasets.make_classification(**{**opts, **kwargs, "random_state": seed})
    if source == "synthetic-regression":
        opts = {"n_samples": 2000, "n_features": 20, "n_informative": 10, "noise": 10.0}
        return datasets.make_regression(**{**opts, **kwargs, "random_state": seed})
    loader = getattr(datasets, f"load_{source}")
    x, y = loader(return_X_y=True)
    return x, y


def bundled_arrays(source: str, seed: int, kwargs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A bundled dataset read without importing scikit-learn where it can be (``splits``)."""
    found = None if kwargs else bundled(source)
    return found if found is not None else sklearn_arrays(source, seed, kwargs)


def read_csv(path: Path, target: str | None, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    if target is None:
        raise settings.problem("data.target", "name the CSV column to predict (got nothing)")
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's byte-order mark
        rows = [row for row in csv.reader(fh) if any(field.strip() for field in row)]
    if len(rows) < 2:
        raise settings.problem("data.source", f"{path} has no data rows")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if target not in header:
        raise settings.problem(
            "data.target", f"column {target!r} is not in {path.name} (columns: {', '.join(header)})"
        )
    t = header.index(target)
    features = [i for i in range(len(header)) if i != t]
    x = np.empty((len(body), len(features)), dtype=np.float64)
    for r, row in enumerate(body):
        if len(row) != len(header):
            raise settings.problem(
                "data.source",
                f"{path.name} row {r + 2} has {len(row)} fields, expected {len(header)}",
            )
        for j, i in enumerate(features):
            try:
                x[r, j] = float(row[i])
            except ValueError:
                raise settings.problem(
                    "data.source",
                    f"{path.name} row {r + 2}, column {header[i]!r}: expected a number "
                    f"(got {row[i]!r})",
                ) from None
    labels = [row[t].strip() for row in body]
    if "" in labels:
        raise settings.problem(
            "data.target", f"{path.name} row {labels.index('') + 2}: column {target!r} is empty"
        )
    try:
        values = np.array([float(v) for v in labels])
    except ValueError:
        return x, np.array(labels)  # text labels: classes
    # Whole numbers with few distinct values are class labels (use loss: mse to regress them).
    if np.all(values == np.round(values)) and len(np.unique(values)) <= 50:
        return x, values.astype(np.int64)
    return x, values


def read_npz(path: Path, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in ("x", "y") if k not in arrays.files]
        if missing:
            raise settings.problem(
                "data.source",
                f"{path.name} must hold arrays 'x' and 'y' (has: {', '.join(arrays.files)})",
            )
        return arrays["x"], arrays["y"]
