"""``adamtune.search.stats`` against scipy.stats (which adamtune no longer imports to search)."""

from __future__ import annotations

import pytest
from scipy import stats

from adamtune.search import stats as ours


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 14, 20, 33, 60, 100, 250, 1000, 2.5])
@pytest.mark.parametrize("p", [0.001, 0.05, 0.2, 0.5, 0.6, 0.8, 0.9, 0.95, 0.99, 0.999])
def test_quantile_is_scipys(p: float, df: float) -> None:
    assert ours.quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("df", [1, 3, 12, 80])
@pytest.mark.parametrize("t", [-40.0, -2.0, -0.3, 0.0, 0.7, 1.5, 6.0, 300.0])
def test_cdf_is_scipys(t: float, df: float) -> None:
    assert ours.cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-10, abs=1e-15)


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.5, 0)])
def test_quantile_refuses_what_has_none(p: float, df: float) -> None:
    with pytest.raises(ValueError, match="0 < p < 1"):
        ours.quantile(p, df)


@pytest.mark.parametrize(
    "diffs",
    [[0.1, 0.3, -0.05], [0.01, 0.02, 0.015, 0.03, -0.01], [-0.2, -0.1, 0.05, -0.3], [1e-4, 2e-4]],
)
def test_the_paired_test_is_scipy_s_one_sample_t_test(diffs: list[float]) -> None:
    for alternative in ("greater", "less"):
        expected = stats.ttest_1samp(diffs, 0.0, alternative=alternative).pvalue
        assert ours.paired_p(diffs, alternative) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_equal_differences_decide_by_their_sign_and_diverged_runs_average_to_inf() -> None:
    assert ours.paired_p([0.2, 0.2, 0.2]) == 0.0 and ours.paired_p([0.2, 0.2], "less") == 1.0
    assert ours.mean([1.0, float("nan")]) == float("inf") and ours.mean([1.0, 3.0]) == 2.0
    assert ours.std([1.0]) == 0.0 and ours.std([1.0, float("inf")]) == float("inf")
