"""Statistics for choices under noise, in plain Python: the mean and spread of runs that may
have diverged, Student's t, and the one-sided paired t test.

The search's verdicts (``selection``) and ``verify`` both use this module. Student's t needs one
number at a time (``t.ppf(confidence, df)``, a p-value); importing ``scipy.stats`` for it costs
~0.4 s of every search (and of ``best``). Here the distribution function is the regularized
incomplete beta function, I_x(df/2, 1/2), evaluated by its continued fraction (Numerical
Recipes, 2nd ed., section 6.4), and the quantile is found by bisection to float precision.
tests/search/test_stats.py checks them against scipy to 1e-10.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

MIN_GAIN = 0.1  # of the noise: the smallest gain worth calling an improvement, however sure


def mean(values: Sequence[float]) -> float:
    """The mean, or +inf when any run did not finish finite (a diverged run never averages
    into a good value)."""
    return math.inf if not all(math.isfinite(v) for v in values) else statistics.fmean(values)


def std(values: Sequence[float]) -> float:
    """The sample standard deviation: 0 for fewer than two values, +inf with a non-finite one."""
    if len(values) < 2:
        return 0.0
    if not all(math.isfinite(v) for v in values):
        return math.inf
    return statistics.stdev(values)


def paired_p(differences: Sequence[float], alternative: str = "greater") -> float:
    """The one-sided p-value of the one-sample t test that the mean of ``differences`` is 0,
    against ``greater`` (or ``less``) than 0: ``scipy.stats.ttest_1samp(...).pvalue``. Equal
    differences, a zero spread, give 0 or 1 by their sign."""
    n = len(differences)
    if n < 2:
        raise ValueError(f"a paired test needs two differences at least (got {n})")
    sign = 1.0 if alternative == "greater" else -1.0
    center = sign * statistics.fmean(differences)
    spread = statistics.pstdev(differences)
    if spread == 0:
        return 0.0 if center > 0 else 1.0
    t = center / (statistics.stdev(differences) / math.sqrt(n))
    return 1.0 - cdf(t, n - 1)


def cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def quantile(p: float, df: float) -> float:
    """The t such that P(T <= t) = ``p`` (0 < p < 1), as ``scipy.stats.t.ppf``."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"quantile needs 0 < p < 1 and df > 0 (got p={p}, df={df})")
    if p < 0.5:
        return -quantile(1 - p, df)
    low, high = 0.0, 1.0
    while cdf(high, df) < p:  # heavy tails: at df=1, p=0.999 is t=318
        low, high = high, high * 2
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        low, high = (mid, high) if cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); else use symmetry.
    if x < (a + 1) / (a + b + 2):
        return front * _fraction(a, b, x) / a
    return 1.0 - front * _fraction(b, a, 1.0 - x) / b


def _fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method."""
    tiny, eps = 1e-300, 1e-16
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return result
