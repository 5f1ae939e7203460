"""gradcore.stats against closed forms."""
import math

import numpy as np
import pytest

from gradcore import GradcoreInputError, stats


def test_mean_ci_matches_the_textbook_formula():
    values = [1.0, 2.0, 3.0, 4.0]
    m, lo, hi = stats.mean_ci(values)
    half = 3.182446305284263 * np.std(values, ddof=1) / 2   # t_{0.975, 3} from tables
    assert m == 2.5 and math.isclose(hi - m, half) and math.isclose(m - lo, half)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
def test_mean_interval_covers_the_mean_at_its_nominal_95_percent(n):
    """The coverage meta-test: 4000 simulated intervals per sample size, Gaussian samples."""
    rng = np.random.default_rng(n)
    hits = [lo <= 1.0 <= hi for lo, hi in (stats.mean_ci(rng.normal(1.0, 2.0, n))[1:] for _ in range(4000))]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_the_normal_interval_it_replaced_would_fail_the_meta_test():
    """mean ± 1.96·SE over 3 seeds covers ~81 %: the meta-test above can tell."""
    rng = np.random.default_rng(3)
    samples = rng.normal(0.0, 1.0, (4000, 3))
    half = stats.Z95 * samples.std(axis=1, ddof=1) / math.sqrt(3)
    assert np.mean(np.abs(samples.mean(axis=1)) <= half) < 0.85


def test_slope_interval_covers_at_few_points():
    rng = np.random.default_rng(1)
    x = np.arange(4.0)
    hits = [lo < 0.3 < hi for lo, hi in (stats.slope_ci(x, 0.3 * x + rng.normal(0, 1, 4))[1:] for _ in range(4000))]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_wilson_interval_covers_a_proportion():
    rng = np.random.default_rng(2)
    hits = [lo <= 0.3 <= hi for lo, hi in (stats.proportion_ci(int(rng.binomial(200, 0.3)), 200)[1:]
                                           for _ in range(4000))]
    assert 0.93 <= np.mean(hits) <= 0.97
    assert stats.proportion_ci(0, 10)[1] == pytest.approx(0.0, abs=1e-12)
    assert stats.proportion_ci(10, 10)[2] == pytest.approx(1.0, abs=1e-12)


def test_slope_of_an_exact_line_has_zero_width():
    s, lo, hi = stats.slope_ci([0, 1, 2, 3], [1, 3, 5, 7])
    assert math.isclose(s, 2.0) and math.isclose(lo, 2.0) and math.isclose(hi, 2.0)


def test_power_law_exponent_and_per_seed_slopes():
    x = np.array([1, 2, 4, 8, 16.0])
    assert math.isclose(stats.loglog_exponent(x, 3 * x ** 0.5)[0], 0.5)
    m, lo, hi = stats.per_seed_slope_ci([0, 1, 2], [[1, 2, 4], [1, 2, 4]])
    assert math.isclose(m, math.log(2)) and math.isclose(lo, hi)


def test_slope_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    x = np.arange(50.0)
    hits = [lo < 0.3 < hi for lo, hi in (stats.slope_ci(x, 0.3 * x + rng.normal(0, 1, 50))[1:] for _ in range(400))]
    assert 0.92 <= np.mean(hits) <= 0.98


@pytest.mark.parametrize("call,argument", [
    (lambda: stats.mean_ci([]), "values"),
    (lambda: stats.mean_ci([5.0]), "values"),
    (lambda: stats.proportion_ci(3, 2), "successes"),
    (lambda: stats.mean_ci([1.0, float("nan")]), "values"),
    (lambda: stats.slope_ci([1, 2], [1, 2]), "x"),
    (lambda: stats.slope_ci([1, 1, 1], [1, 2, 3]), "x"),
    (lambda: stats.slope_ci([1, 2, 3], [1, 2]), "y"),
    (lambda: stats.loglog_exponent([1, 2, 3], [1, 0, 3]), "y"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(GradcoreInputError, match=f"^{argument}:"):
        call()


def test_per_seed_slopes_refuse_a_fit_they_cannot_make():
    with pytest.raises(GradcoreInputError, match="2 distinct x"):
        stats.per_seed_slope_ci([4], [[1.0], [2.0]])
    with pytest.raises(GradcoreInputError, match="one y per x"):
        stats.per_seed_slope_ci([1, 2, 3], [[1.0, 2.0], [2.0, 3.0]])
    with pytest.raises(GradcoreInputError, match="positive x"):
        stats.per_seed_slope_ci([0, 1, 2], [[1.0, 2.0, 3.0], [1.0, 2.0, 4.0]], log_x=True)
    slope, lo, hi = stats.per_seed_slope_ci([1, 2, 4], [[1, 2, 4], [1, 2, 4.2]], log_x=True)
    assert lo <= slope <= hi and slope == pytest.approx(1.0, abs=0.05)
