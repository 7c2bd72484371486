"""Summaries of repeated measurements: the mean and its Student-t confidence interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy import stats


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None]:
    """``(mean, half-width)`` of the ``confidence`` interval of the mean of ``values``.

    The half-width is t_{(1+c)/2, n-1} · s / √n with the sample standard deviation s; ``None``
    for a single value (no spread to estimate).
    """
    if not values:
        raise ValueError("mean_interval needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    quantile = float(stats.t.ppf((1.0 + confidence) / 2.0, len(values) - 1))
    return mean, quantile * statistics.stdev(values) / math.sqrt(len(values))
