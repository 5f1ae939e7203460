"""gradcore.stats against closed forms."""
import math

import numpy as np
import pytest

from gradcore import GradcoreInputError, stats


def test_mean_ci_matches_the_textbook_formula():
    values = [1.0, 2.0, 3.0, 4.0]
    m, lo, hi = stats.mean_ci(values)
    half = stats.Z95 * np.std(values, ddof=1) / 2
    assert m == 2.5 and math.isclose(hi - m, half) and math.isclose(m - lo, half)
    assert stats.mean_ci([5.0]) == (5.0, 5.0, 5.0)


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
    (lambda: stats.mean_ci([1.0, float("nan")]), "values"),
    (lambda: stats.slope_ci([1, 2], [1, 2]), "x"),
    (lambda: stats.slope_ci([1, 1, 1], [1, 2, 3]), "x"),
    (lambda: stats.slope_ci([1, 2, 3], [1, 2]), "y"),
    (lambda: stats.loglog_exponent([1, 2, 3], [1, 0, 3]), "y"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(GradcoreInputError, match=f"^{argument}:"):
        call()
