"""Datasets: builtins, CSV, NPZ and user functions become train/val splits, checked early."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from adamtune.config.schema import load_config
from adamtune.errors import ConfigError
from adamtune.task.data import TaskData, TensorSplit, load_data

if TYPE_CHECKING:
    from conftest import WriteModule


BUILTINS = [
    # source, kind, out_features, in_shape, rows
    ("digits", "classification", 10, (1, 8, 8), 1797),
    ("iris", "classification", 3, (4,), 150),
    ("wine", "classification", 3, (13,), 178),
    ("breast_cancer", "classification", 2, (30,), 569),
    ("diabetes", "regression", 1, (10,), 442),
    ("synthetic-classification", "classification", 3, (20,), 2000),
    ("synthetic-regression", "regression", 1, (20,), 2000),
]


def load(write_config: Callable[..., Path], text: str, file: str = "data.yaml") -> TaskData:
    return load_data(load_config(write_config(text, file=file)))


def problem(write_config: Callable[..., Path], text: str, file: str = "data.yaml") -> str:
    path = write_config(text, file=file)
    with pytest.raises(ConfigError) as info:
        load_data(load_config(path))
    assert len(info.value.problems) == 1
    return str(info.value).replace(str(path), "CFG")


@pytest.mark.parametrize(
    ("source", "kind", "out", "in_shape", "rows"), BUILTINS, ids=[b[0] for b in BUILTINS]
)
def test_builtin_datasets(
    write_config: Callable[..., Path],
    source: str,
    kind: str,
    out: int,
    in_shape: tuple[int, ...],
    rows: int,
) -> None:
    data = load(write_config, f"data:\n  source: {source}\n")
    assert data.kind == kind
    assert data.out_features == out
    assert data.in_shape == in_shape
    assert data.n_train + data.n_val == rows
    assert data.n_val == pytest.approx(0.2 * rows, abs=1)
    assert data.in_memory
    assert isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)
    assert data.train.x.dtype == torch.float32
    assert data.train.x.shape[0] == data.n_train
    if kind == "classification":
        assert data.train.y.dtype == torch.long and data.train.y.ndim == 1
        assert int(data.train.y.max()) == out - 1
    else:
        assert data.train.y.dtype == torch.float32 and data.train.y.shape == (data.n_train, 1)
    assert source in data.description


def test_standardisation_is_fitted_on_the_train_split_only(
    write_config: Callable[..., Path],
) -> None:
    data = load(write_config, "data:\n  source: wine\n")
    assert isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)
    train_mean, train_std = data.train.x.mean(0), data.train.x.std(0, unbiased=False)
    assert torch.allclose(train_mean, torch.zeros_like(train_mean), atol=1e-5)
    assert torch.allclose(train_std, torch.ones_like(train_std), atol=1e-4)
    # Val is scaled with train's statistics, so its own are not exactly 0 and 1.
    assert data.val.x.mean(0).abs().max() > 1e-3
    assert (data.val.x.std(0, unbiased=False) - 1).abs().max() > 1e-3


def test_regression_targets_are_standardised_by_train(write_config: Callable[..., Path]) -> None:
    data = load(write_config, "data:\n  source: diabetes\n")
    assert isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)
    assert abs(float(data.train.y.mean())) < 1e-5
    assert float(data.train.y.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    assert abs(float(data.val.y.mean())) > 1e-3


def test_standardize_false_keeps_raw_features(write_config: Callable[..., Path]) -> None:
    from sklearn.datasets import load_wine

    data = load(write_config, "data:\n  source: wine\n  standardize: false\n")
    assert isinstance(data.train, TensorSplit)
    raw = torch.as_tensor(load_wine().data, dtype=torch.float32)
    assert float(data.train.x[:, 0].mean()) > 10  # alcohol, in percent
    # Every training row is a row of the raw data.
    assert all(bool((raw == row).all(1).any()) for row in data.train.x[:5])


def test_constant_features_stay_finite(write_config: Callable[..., Path]) -> None:
    data = load(write_config, "data:\n  source: digits\n")
    assert isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)
    assert torch.isfinite(data.train.x).all() and torch.isfinite(data.val.x).all()


def test_split_is_stratified(write_config: Callable[..., Path]) -> None:
    data = load(write_config, "data:\n  source: iris\n")
    assert isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)
    assert torch.bincount(data.train.y).tolist() == [40, 40, 40]
    assert torch.bincount(data.val.y).tolist() == [10, 10, 10]


def test_split_is_deterministic_per_seed_and_changes_with_it(
    write_config: Callable[..., Path],
) -> None:
    a = load(write_config, "seed: 0\ndata:\n  source: iris\n", file="a.yaml")
    b = load(write_config, "seed: 0\ndata:\n  source: iris\n", file="b.yaml")
    c = load(write_config, "seed: 1\ndata:\n  source: iris\n", file="c.yaml")
    assert isinstance(a.train, TensorSplit) and isinstance(a.val, TensorSplit)
    assert isinstance(b.train, TensorSplit) and isinstance(b.val, TensorSplit)
    assert isinstance(c.val, TensorSplit)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.val.x, c.val.x)
    assert torch.bincount(c.val.y).tolist() == [10, 10, 10]  # still stratified


def test_val_fraction(write_config: Callable[..., Path]) -> None:
    data = load(write_config, "data:\n  source: iris\n  val_fraction: 0.5\n")
    assert (data.n_train, data.n_val) == (75, 75)


def write_csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def test_csv_with_numeric_labels(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    write_csv(tmp_path / "t.csv", "a,b,label", [f"{i},{i * 7 % 5},{i % 3}" for i in range(60)])
    data = load(write_config, "data:\n  source: t.csv\n  target: label\n  batch_size: 8\n")
    assert (data.kind, data.out_features, data.in_shape) == ("classification", 3, (2,))
    assert data.n_train + data.n_val == 60
    assert "t.csv" in data.description


def test_csv_with_text_labels(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    rows = [f"{i},{'dog' if i % 2 else 'cat'},{i * 3 % 11}" for i in range(40)]
    write_csv(tmp_path / "pets.csv", "size,kind,weight", rows)
    data = load(
        write_config,
        "data:\n  source: pets.csv\n  target: kind\n  batch_size: 8\n  standardize: false\n",
    )
    assert (data.kind, data.out_features, data.in_shape) == ("classification", 2, (2,))
    assert isinstance(data.train, TensorSplit)
    # Classes in sorted order: cat = 0, dog = 1 (odd sizes are dogs).
    sizes, labels = data.train.x[:, 0].long(), data.train.y
    assert labels.dtype == torch.long
    assert torch.equal(labels, sizes % 2)


def test_csv_float_target_is_regression(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    write_csv(tmp_path / "r.csv", "a,b,y", [f"{i},{i % 7},{i * 0.37:.2f}" for i in range(50)])
    data = load(write_config, "data:\n  source: r.csv\n  target: y\n  batch_size: 8\n")
    assert (data.kind, data.out_features) == ("regression", 1)
    assert isinstance(data.train, TensorSplit)
    assert data.train.y.shape == (data.n_train, 1) and data.train.y.dtype == torch.float32


def test_csv_missing_target_column(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    write_csv(tmp_path / "r.csv", "a,b,y", [f"{i},{i},{i}" for i in range(10)])
    msg = problem(write_config, "data:\n  source: r.csv\n  target: label\n  batch_size: 2\n")
    assert msg == "CFG:3: data.target: column 'label' is not in r.csv (columns: a, b, y)"


def test_csv_without_target_key(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    write_csv(tmp_path / "r.csv", "a,b,y", [f"{i},{i},{i}" for i in range(10)])
    msg = problem(write_config, "seed: 0\ndata:\n  source: r.csv\n  batch_size: 2\n")
    assert msg.startswith("CFG:2: data.target: name the CSV column to predict")


def test_csv_row_with_a_non_number(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    write_csv(tmp_path / "bad.csv", "a,b,y", ["1,2,0", "4,oops,1", "5,6,0"])
    msg = problem(write_config, "data:\n  source: bad.csv\n  target: y\n  batch_size: 1\n")
    assert msg == "CFG:2: data.source: bad.csv row 3, column 'b': expected a number (got 'oops')"


def test_csv_short_row(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    write_csv(tmp_path / "short.csv", "a,b,y", ["1,2,0", "4,1"])
    msg = problem(write_config, "data:\n  source: short.csv\n  target: y\n  batch_size: 1\n")
    assert msg == "CFG:2: data.source: short.csv row 3 has 2 fields, expected 3"


def test_csv_without_rows(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    (tmp_path / "head.csv").write_text("a,b,y\n")
    msg = problem(write_config, "data:\n  source: head.csv\n  target: y\n")
    assert msg.startswith("CFG:2: data.source: ") and "has no data rows" in msg


def test_csv_trailing_blank_line_is_not_a_row(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    (tmp_path / "t.csv").write_text(
        "a,b,y\n" + "".join(f"{i},{i % 5},{i % 2}\n" for i in range(20)) + "\n"
    )
    data = load(write_config, "data:\n  source: t.csv\n  target: y\n  batch_size: 4\n")
    assert data.n_train + data.n_val == 20


@pytest.mark.parametrize("name", ["missing.csv", "missing.npz"])
def test_missing_file_names_data_source(write_config: Callable[..., Path], name: str) -> None:
    target = "  target: y\n" if name.endswith(".csv") else ""
    msg = problem(write_config, f"data:\n  source: {name}\n{target}")
    assert msg.startswith("CFG:2: data.source: file not found: ")
    assert msg.endswith(name)


def test_npz_with_flat_features(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", x=rng.normal(size=(50, 6)), y=np.arange(50) % 4)
    data = load(write_config, "data:\n  source: flat.npz\n  batch_size: 8\n")
    assert (data.kind, data.out_features, data.in_shape) == ("classification", 4, (6,))
    assert data.n_train + data.n_val == 50


def test_npz_with_image_shaped_x(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", x=rng.random((50, 1, 8, 8)), y=np.arange(50) % 4)
    data = load(write_config, "data:\n  source: img.npz\n  batch_size: 8\n")
    assert isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)
    assert data.in_shape == (1, 8, 8)
    assert data.train.x.shape == (40, 1, 8, 8) and data.val.x.shape == (10, 1, 8, 8)
    # Standardised per pixel over the training rows.
    assert torch.allclose(data.train.x.mean(0), torch.zeros(1, 8, 8), atol=1e-5)


def test_npz_float_targets_are_regression(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "reg.npz", x=rng.normal(size=(40, 3)), y=rng.normal(size=40))
    data = load(write_config, "data:\n  source: reg.npz\n  batch_size: 8\n")
    assert (data.kind, data.out_features) == ("regression", 1)


def test_npz_missing_y(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    np.savez(tmp_path / "noy.npz", x=np.zeros((10, 3)))
    msg = problem(write_config, "data:\n  source: noy.npz\n")
    assert msg == "CFG:2: data.source: noy.npz must hold arrays 'x' and 'y' (has: x)"


def test_npz_rows_must_match(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    np.savez(tmp_path / "odd.npz", x=np.zeros((10, 3)), y=np.zeros(9, dtype=np.int64))
    msg = problem(write_config, "data:\n  source: odd.npz\n")
    assert msg.startswith("CFG:2: data.source: expected x of shape (rows, features...)")


def test_python_source_returning_tensors(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module("""
        import torch

        def make(n=100, classes=3):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, 5, generator=g)
            y = torch.arange(n) % classes
            k = int(n * 0.8)
            return (x[:k], y[:k]), (x[k:], y[k:])
    """)
    text = f"data:\n  source: {module}:make\n  batch_size: 8\n  kwargs: {{n: 50, classes: 4}}\n"
    data = load(write_config, text)
    assert (data.kind, data.out_features, data.in_shape) == ("classification", 4, (5,))
    assert (data.n_train, data.n_val) == (40, 10)
    assert data.in_memory
    assert isinstance(data.train, TensorSplit) and data.train.y.dtype == torch.long


def test_python_source_pairs_are_standardised_by_train(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module("""
        import torch

        def make():
            g = torch.Generator().manual_seed(0)
            x = 5 + 3 * torch.randn(60, 3, generator=g)
            return (x[:40], torch.arange(40) % 2), (x[40:], torch.arange(20) % 2)
    """)
    data = load(write_config, f"data:\n  source: {module}:make\n  batch_size: 8\n")
    assert isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)
    assert (data.n_train, data.n_val) == (40, 20)  # the user's split is kept
    assert torch.allclose(data.train.x.mean(0), torch.zeros(3), atol=1e-5)
    assert data.val.x.mean(0).abs().max() > 1e-3
    raw = load(
        write_config,
        f"data:\n  source: {module}:make\n  batch_size: 8\n  standardize: false\n",
        file="raw.yaml",
    )
    assert isinstance(raw.train, TensorSplit)
    assert float(raw.train.x.mean()) == pytest.approx(5, abs=1)


def test_python_source_returning_numpy_regression(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module("""
        import numpy as np

        def make():
            rng = np.random.default_rng(0)
            x, y = rng.normal(size=(30, 2)), rng.normal(size=30)
            return (x[:20], y[:20]), (x[20:], y[20:])
    """)
    data = load(write_config, f"data:\n  source: {module}:make\n  batch_size: 4\n")
    assert (data.kind, data.out_features) == ("regression", 1)
    assert isinstance(data.train, TensorSplit)
    assert data.train.x.dtype == torch.float32 and data.train.y.shape == (20, 1)


def test_python_source_returning_datasets(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module("""
        import torch
        from torch.utils.data import TensorDataset

        def make(n=80):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, 4, generator=g)
            y = torch.arange(n) % 3
            return TensorDataset(x[:60], y[:60]), TensorDataset(x[60:], y[60:])
    """)
    data = load(write_config, f"data:\n  source: {module}:make\n  batch_size: 8\n")
    assert not data.in_memory
    assert isinstance(data.train, TensorDataset)
    assert (data.kind, data.out_features, data.in_shape) == ("classification", 3, (4,))
    assert (data.n_train, data.n_val) == (60, 20)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("def make():\n    return 5\n", "must return (train, val)"),
        ("def make():\n    return (1, 2, 3), (4, 5)\n", "must return (train, val)"),
        ("def make(n):\n    return None\n", "raised TypeError: make() missing 1 required"),
        (
            "def make():\n    return ([[1.0]] * 4, [0] * 3), ([[1.0]], [0])\n",
            "train has 4 inputs but 3 targets",
        ),
        (
            "import torch\nfrom torch.utils.data import TensorDataset\n"
            "def make():\n    t = torch.zeros(4, 2)\n"
            "    return TensorDataset(t, t[:, 0]), (t, t[:, 0])\n",
            "train and val must both be Datasets or both pairs",
        ),
        ("THING = 3\n", "is not a class or function"),
        ("def other():\n    pass\n", "cannot import"),
    ],
    ids=[
        "not-a-pair",
        "bad-split",
        "missing-argument",
        "rows-differ",
        "dataset-and-pair",
        "not-callable",
        "no-such-attribute",
    ],
)
def test_python_source_that_fails(
    write_config: Callable[..., Path], user_module: WriteModule, body: str, fragment: str
) -> None:
    module = user_module(body)
    attr = "THING" if "THING" in body else "make"
    msg = problem(write_config, f"seed: 0\ndata:\n  source: {module}:{attr}\n")
    assert msg.startswith("CFG:3: data.source: ")
    assert fragment in msg


def test_python_source_module_not_found(write_config: Callable[..., Path]) -> None:
    msg = problem(write_config, "data:\n  source: no_such_module_here_x:make\n")
    assert msg.startswith("CFG:2: data.source: cannot import 'no_such_module_here_x:make'")


def test_batch_size_larger_than_training_rows(write_config: Callable[..., Path]) -> None:
    msg = problem(write_config, "data:\n  source: iris\n  batch_size: 121\n")
    assert msg == "CFG:3: data.batch_size: must not exceed the 120 training rows (got 121)"
    assert load(write_config, "data:\n  source: iris\n  batch_size: 120\n").n_train == 120


def test_source_path_relative_to_the_config(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "cfgs"
    sub.mkdir()
    write_csv(sub / "t.csv", "a,y", [f"{i},{i % 2}" for i in range(20)])
    monkeypatch.chdir(tmp_path.parent)  # not the config's folder
    data = load(
        write_config, "data:\n  source: t.csv\n  target: y\n  batch_size: 4\n", file="cfgs/c.yaml"
    )
    assert data.n_train + data.n_val == 20


def test_text_labels_in_npz_and_labels_reindexed(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    x = np.random.default_rng(0).normal(size=(60, 3))
    np.savez(tmp_path / "t.npz", x=x, y=np.array(["cat", "dog", "eel"] * 20))
    assert load(write_config, "data: {source: t.npz, batch_size: 4}\n").out_features == 3
    np.savez(tmp_path / "years.npz", x=x, y=np.array([2019, 2021, 2024] * 20))
    data = load(write_config, "data: {source: years.npz, batch_size: 4}\n")
    assert data.out_features == 3 and isinstance(data.train, TensorSplit)
    assert set(data.train.y.tolist()) == {0, 1, 2}


def test_explicit_numeric_loss_makes_integer_targets_a_regression(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    x = np.random.default_rng(0).normal(size=(60, 3))
    np.savez(tmp_path / "r.npz", x=x, y=np.arange(60) % 11 - 5)
    data = load(write_config, "data: {source: r.npz, batch_size: 4}\ntrain: {loss: mse}\n")
    assert data.kind == "regression" and data.out_features == 1


def test_bce_needs_zero_one_targets(write_config: Callable[..., Path]) -> None:
    msg = problem(write_config, "data: {source: iris}\ntrain: {loss: bce}\n")
    assert msg.startswith("CFG:2: train.loss: bce needs targets that are 0 or 1")
    data = load(write_config, "data: {source: breast_cancer}\ntrain: {loss: bce}\n")
    assert data.kind == "binary" and data.out_features == 1


def test_nan_in_data_is_refused_at_load(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3))
    x[3, 1] = np.nan
    np.savez(tmp_path / "n.npz", x=x, y=np.arange(40) % 2)
    msg = problem(write_config, "data: {source: n.npz, batch_size: 4}\n")
    assert msg == "CFG:1: data.source: 1 inputs are NaN or infinite"


def test_csv_with_a_byte_order_mark(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    rows = "".join(f"{i},{i % 2}\n" for i in range(20))
    (tmp_path / "bom.csv").write_text("label,b\n" + rows, encoding="utf-8-sig")
    data = load(write_config, "data: {source: bom.csv, target: label, batch_size: 4}\n")
    assert data.n_train + data.n_val == 20


def test_bad_split_and_bad_generator_kwargs_name_their_key(
    write_config: Callable[..., Path],
) -> None:
    msg = problem(write_config, "data: {source: iris, val_fraction: 0.01}\n")
    assert msg.startswith("CFG:1: data.val_fraction: cannot split 150 rows")
    msg = problem(write_config, "data: {source: synthetic-classification, kwargs: {n_sample: 9}}\n")
    assert msg.startswith("CFG:1: data.kwargs: synthetic-classification refused them")


def test_integer_zero_one_columns_are_multi_label(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "ml.npz", x=rng.normal(size=(60, 4)), y=rng.integers(0, 2, size=(60, 3)))
    data = load(write_config, "data: {source: ml.npz, batch_size: 4}\n")
    assert data.kind == "binary" and data.out_features == 3
    np.savez(tmp_path / "two.npz", x=rng.normal(size=(60, 4)), y=rng.integers(0, 5, size=(60, 2)))
    msg = problem(write_config, "data: {source: two.npz, batch_size: 4}\n")
    assert "class labels must be one per row" in msg


def test_csv_with_an_empty_target_cell_names_the_row(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    rows = "".join(f"{i},{i * 0.5}\n" for i in range(20)).replace("3,1.5", "3,")
    (tmp_path / "gap.csv").write_text("a,price\n" + rows)
    msg = problem(write_config, "data: {source: gap.csv, target: price, batch_size: 4}\n")
    assert msg == "CFG:1: data.target: gap.csv row 5: column 'price' is empty"


def test_folds_partition_the_rows_into_k_val_splits(write_config: Callable[..., Path]) -> None:
    from adamtune.task.data import load_splits

    splits = load_splits(
        load_config(
            write_config("data: {source: iris, folds: 5, standardize: false}\n", file="folds.yaml")
        )
    )
    assert len(splits) == 5
    assert all(s.n_train == 120 and s.n_val == 30 for s in splits)
    rows = [tuple(r) for s in splits for r in s.val.x.tolist()]  # type: ignore[union-attr]
    assert len(rows) == 150  # every row is validated on exactly once
    for s in splits:  # stratified: each val fold holds 10 of each class
        assert torch.bincount(s.val.y).tolist() == [10, 10, 10]  # type: ignore[union-attr]


def test_another_split_seed_draws_another_split(write_config: Callable[..., Path]) -> None:
    from adamtune.task.data import load_splits

    settings = load_config(write_config("data: {source: wine}\n", file="seeded.yaml"))
    a, b = load_splits(settings)[0], load_splits(settings, split_seed=1000)[0]
    assert a.n_val == b.n_val and not torch.equal(a.val.x, b.val.x)  # type: ignore[union-attr]
    assert torch.equal(load_splits(settings)[0].val.x, a.val.x)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "data: {source: iris, folds: 3, val_fraction: 0.3}\n",
            "data.val_fraction: folds decide the val splits",
        ),
        ("data: {source: 'mod:fn', folds: 3}\n", "data.folds: your function returns its own"),
        ("data: {source: iris, folds: 1}\n", "data.folds: must be >= 2 (got 1)"),
    ],
)
def test_folds_that_cannot_apply_are_refused(
    write_config: Callable[..., Path], text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text, file="badfolds.yaml"))
    assert expected in str(info.value)
