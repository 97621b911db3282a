"""Ranking a stage's trials by a smooth model of their values, not by one noisy value each.

A trial's validation loss is its parameters' quality plus noise (the seed's initial weights and
batch order, the split), and the lowest of a dozen values is partly the luckiest (the winner's
curse). Neighbouring parameter sets train alike, so a model fitted to the whole stage pools
them: a Gaussian process (Matern 5/2 kernel, constant mean) on the stage's coordinates scaled
to [0, 1], fitted to the log of the values, with its length scale and noise chosen by marginal
likelihood from a small grid. A trial is ranked by the model's mean at its own point, which
is its value shrunk toward what its neighbours say; the incumbent the stage started from is a
point of the same model, on the same seed and split, so "does the stage's best beat the
incumbent" is asked of the model too. The cube's axes are the coordinates the points vary
in, so the ranking needs no knowledge of what the stage searched.

Pure numpy and deterministic: the same rows give the same ranking in every worker and in
``best``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from adamtune.train.params import AdamParams

_LENGTHS = (0.15, 0.3, 0.6, 1.2)  # of the unit cube's side
_NOISES = (0.1, 0.3, 0.6, 1.0)  # noise variance, as a fraction of the values' variance
_MIN_POINTS = 4  # fewer points than this: the values as they are
_CLIP = 0.75  # values above this quantile are clipped to it: the fit is for the good region


def _coordinates(p: AdamParams) -> list[float]:
    """Every parameter on the scale it is searched on: lr, eps and weight decay on a log
    scale (no decay a decade below the smallest), the betas as log(1 - beta), choices 0/1."""
    return [
        math.log(p.lr),
        math.log(1 - p.beta1),
        math.log(1 - p.beta2),
        math.log(p.eps),
        math.log(p.weight_decay) if p.weight_decay > 0 else -math.inf,
        float(p.amsgrad),
        float(p.decoupled_weight_decay),
        math.log(p.schedule.end) if p.schedule.decays else 0.0,  # the kind: one-hot, below
        p.schedule.warmup,
    ]


def unit_points(params: Sequence[AdamParams]) -> list[list[float]]:
    """``params`` as points of a unit cube: one axis per coordinate that varies among them,
    scaled from its smallest (0) to its largest (1) value; a schedule kind is one 0/1 axis
    per kind. The axes a stage searched are exactly those its trials vary."""
    raw = [_coordinates(p) for p in params]
    decays = [r[4] for r in raw if math.isfinite(r[4])]
    floor = (min(decays) - math.log(10)) if decays else 0.0
    for r in raw:
        r[4] = r[4] if math.isfinite(r[4]) else floor
    kinds = sorted({p.schedule.kind for p in params})
    points: list[list[float]] = [[] for _ in params]
    for axis in range(len(raw[0]) if raw else 0):
        column = [r[axis] for r in raw]
        low, high = min(column), max(column)
        if high - low > 1e-12:
            for point, value in zip(points, column, strict=True):
                point.append((value - low) / (high - low))
    if len(kinds) > 1:
        for point, p in zip(points, params, strict=True):
            point.extend(float(p.schedule.kind == kind) for kind in kinds)
    return points


def _matern52(x: np.ndarray, length: float) -> np.ndarray:
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0)) / length
    return (1 + math.sqrt(5) * d + 5.0 / 3.0 * d**2) * np.exp(-math.sqrt(5) * d)


def smoothed(points: Sequence[Sequence[float]], values: Sequence[float]) -> list[float]:
    """The model's mean at each of ``points``, fitted to ``values`` (finite). With fewer
    than a few points, or values that do not vary, the values themselves."""
    y = np.asarray(values, dtype=float)
    if len(y) < _MIN_POINTS:
        return [float(v) for v in y]
    positive = bool(np.all(y > 0))
    z = np.log(y) if positive else y.copy()
    cap = float(np.quantile(z, _CLIP))
    clipped = z > cap
    z = np.minimum(z, cap)
    mean, scale = float(z.mean()), float(z.std())
    if scale <= 1e-12:
        return [float(v) for v in y]
    zs = (z - mean) / scale
    x = np.asarray(points, dtype=float)
    best: tuple[float, np.ndarray] | None = None
    for length in _LENGTHS:
        k = _matern52(x, length)
        for noise in _NOISES:
            try:
                chol = np.linalg.cholesky(k + noise * np.eye(len(zs)))
            except np.linalg.LinAlgError:
                continue
            alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, zs))
            evidence = -0.5 * float(zs @ alpha) - float(np.log(np.diag(chol)).sum())
            if best is None or evidence > best[0]:
                best = (evidence, k @ alpha)
    if best is None:
        return [float(v) for v in y]
    fitted = best[1] * scale + mean
    # Values above the clip keep their own (bad) value: the model only speaks for the region
    # it was fitted for.
    out = np.exp(fitted) if positive else fitted
    return [float(v) if c else float(o) for o, v, c in zip(out, y, clipped, strict=True)]
