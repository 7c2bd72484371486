"""runners/plumbing/stats.py: the mean and its Student-t interval."""

import math

import pytest

from pathevo.runners.plumbing.stats import mean_interval


def test_interval_of_three_values_uses_student_t_with_two_degrees_of_freedom():
    mean, half_width = mean_interval([1.0, 2.0, 3.0])
    t_975_2 = 4.302652729911275  # the 0.975 quantile of Student's t with 2 degrees of freedom
    assert mean == 2.0
    assert half_width == pytest.approx(t_975_2 * 1.0 / math.sqrt(3))


def test_wider_confidence_wider_interval_and_no_spread_no_width():
    assert mean_interval([1.0, 5.0, 2.0], 0.99)[1] > mean_interval([1.0, 5.0, 2.0], 0.9)[1]
    assert mean_interval([4.0, 4.0]) == (4.0, 0.0)
    assert mean_interval([7.0]) == (7.0, None)


@pytest.mark.parametrize(("values", "confidence"), [([], 0.95), ([1.0, 2.0], 1.0)])
def test_bad_input_is_an_error(values, confidence):
    with pytest.raises(ValueError):
        mean_interval(values, confidence)
