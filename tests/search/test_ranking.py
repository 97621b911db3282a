"""Ranking a stage's trials by a smooth model of their values (search/ranking.py)."""

from __future__ import annotations

import math
import random
import statistics

from adamtune.search.ranking import smoothed, unit_points
from adamtune.train.params import AdamParams


def _true(lr: float) -> float:
    """A validation loss whose best lr is 10**-2.5."""
    return 0.1 + 0.05 * (math.log10(lr) + 2.5) ** 2


def test_the_model_picks_closer_to_the_true_best_than_the_lowest_noisy_value() -> None:
    picked_raw, picked_model = [], []
    for seed in range(100):
        rng = random.Random(seed)
        params = [AdamParams(lr=10 ** rng.uniform(-5, -1)) for _ in range(15)]
        values = [_true(p.lr) * (1 + rng.gauss(0, 0.15)) for p in params]
        fitted = smoothed(unit_points(params), values)
        picked_raw.append(_true(params[min(range(15), key=values.__getitem__)].lr))
        picked_model.append(_true(params[min(range(15), key=fitted.__getitem__)].lr))
    # measured: 0.1077 by the lowest value, 0.1038 by the model (the true best is 0.1)
    assert statistics.fmean(picked_model) < statistics.fmean(picked_raw) - 0.002


def test_the_cube_has_an_axis_per_coordinate_that_varies() -> None:
    base = AdamParams()
    points = unit_points([base, AdamParams(lr=1e-2, beta1=0.5), AdamParams(lr=1e-4, beta1=0.9)])
    expected = [[0.5, 0.0], [1.0, 1.0], [0.0, 0.0]]  # lr (log) and log(1 - beta1)
    assert [[round(x, 9) for x in p] for p in points] == expected
    # no decay sits a decade below the smallest decay tried
    wd = unit_points([base, AdamParams(weight_decay=1e-4), AdamParams(weight_decay=1e-2)])
    assert [round(p[0], 9) for p in wd] == [0.0, round(1 / 3, 9), 1.0]


def test_few_or_equal_values_are_returned_as_they_are() -> None:
    params = [AdamParams(lr=lr) for lr in (1e-4, 1e-3, 1e-2)]
    assert smoothed(unit_points(params), [0.3, 0.1, 0.2]) == [0.3, 0.1, 0.2]
    five = [AdamParams(lr=10.0**-k) for k in range(1, 6)]
    assert smoothed(unit_points(five), [0.2] * 5) == [0.2] * 5
