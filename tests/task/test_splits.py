"""``splits`` gives scikit-learn's datasets and splits, exactly, without importing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split

from adamtune.task.splits import bundled, split_indices

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("source", ["digits", "iris", "wine", "breast_cancer"])
def test_bundled_datasets_are_scikit_learns_own(source: str) -> None:
    x, y = getattr(datasets, f"load_{source}")(return_X_y=True)
    found = bundled(source)
    assert found is not None
    assert found[0].dtype == x.dtype and found[1].dtype == y.dtype
    np.testing.assert_array_equal(found[0], x)
    np.testing.assert_array_equal(found[1], y)


def test_other_sources_are_left_to_scikit_learn() -> None:
    assert bundled("diabetes") is None and bundled("synthetic-regression") is None


def _cases() -> list[tuple[np.ndarray, float, int]]:
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(150):
        n_classes = int(rng.integers(2, 12))
        weights = rng.dirichlet(np.ones(n_classes) * rng.choice([0.5, 5.0]))
        n = int(rng.integers(4 * n_classes, 600))
        y = rng.choice(n_classes, size=n, p=weights)
        fraction = float(rng.choice([0.1, 0.2, 0.25, 1 / 3, 0.5, 0.7]))
        cases.append((y, fraction, int(rng.integers(1000))))
    # Ties in the classes' remainders (equal counts), text labels, the digits themselves.
    cases += [(np.repeat(np.arange(7), 9), 0.2, s) for s in range(5)]
    cases += [(np.array(list("abcab" * 20)), 0.3, 4)]
    cases += [(datasets.load_digits(return_X_y=True)[1], 0.2, s) for s in range(3)]
    return cases


def test_splits_are_scikit_learns_index_for_index() -> None:
    compared = 0
    for y, fraction, seed in _cases():
        for stratified in (False, True):
            found = split_indices(y, fraction, seed, stratified=stratified)
            try:
                train, val = train_test_split(
                    np.arange(len(y)),
                    test_size=fraction,
                    random_state=seed,
                    stratify=y if stratified else None,
                )
            except ValueError:  # refused by scikit-learn: left to it, for its message
                assert found is None
                continue
            assert found is not None  # the same rules: refused exactly where scikit-learn is
            np.testing.assert_array_equal(found[0], train)
            np.testing.assert_array_equal(found[1], val)
            compared += 1
    assert compared >= 250


def test_sizes_scikit_learn_refuses_are_left_to_it() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 2])  # class 2 has one member
    assert split_indices(y, 0.3, 0, stratified=True) is None
    assert split_indices(np.repeat(np.arange(10), 3), 0.1, 0, stratified=True) is None  # 3 < 10
    assert split_indices(np.arange(3), 0.99, 0, stratified=False) is None  # nothing to train on


@pytest.mark.slow
def test_a_digits_search_never_imports_scikit_learn() -> None:
    probe = (
        "import sys\n"
        "from adamtune.config.schema import load_config\n"
        "from adamtune.task.build import build_task\n"
        f"build_task(load_config({str(ROOT / 'configs' / 'digits-mlp.yaml')!r}), 'cpu')\n"
        "assert 'sklearn' not in sys.modules, 'sklearn imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
