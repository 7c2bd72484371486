"""Learning curves from episode returns, and the transfer measures computed on them.

PathNet (Fernando et al. 2017, arXiv:1701.08734) compares learning speed on task B across
conditions; here that is the environment steps a condition needs before its running mean return
first reaches a threshold, and the area under its learning curve. Pure functions over lists.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

WINDOW = 20
"""Episodes in the running mean of a learning curve (and of ``final_mean_return``)."""


def learning_curve(
    episodes: Sequence[Sequence[float]],
    window: int = WINDOW,
    points: int = 200,
    full_window: bool = False,
) -> list[list[float]]:
    """[[step, mean return of the last ``window`` episodes]] at most ``points`` long.

    ``episodes``: (global step at which it ended, return) in any order; one point per episode,
    thinned evenly (the last point is always kept). ``full_window`` drops the points averaged
    over fewer than ``window`` episodes (all but the last if there are fewer episodes), so that a
    single lucky early episode does not count as reaching a threshold.
    """
    ordered = sorted((int(step), float(value)) for step, value in episodes)
    curve, recent, total = [], [], 0.0
    for step, value in ordered:
        recent.append(value)
        total += value
        if len(recent) > window:
            total -= recent.pop(0)
        curve.append([step, total / len(recent)])
    if full_window:
        curve = curve[min(window, len(curve)) - 1 :]
    if len(curve) <= points:
        return curve
    stride = len(curve) / points
    thinned = [curve[int(i * stride)] for i in range(points - 1)]
    return [*thinned, curve[-1]]


def final_mean_return(episodes: Sequence[Sequence[float]], window: int = WINDOW) -> float:
    """Mean return of the last ``window`` episodes to end (NaN if there were none)."""
    ordered = sorted((int(step), float(value)) for step, value in episodes)[-window:]
    return sum(value for _, value in ordered) / len(ordered) if ordered else float("nan")


class LatestReturns:
    """The mean of the ``window`` latest episodes by step, kept as episodes arrive: what
    :func:`final_mean_return` gives for every episode so far, without sorting them all again
    (an A3C phase asks after each of thousands of episodes).

    Example:
        >>> latest = LatestReturns(window=2)
        >>> for step, value in [(10, 1.0), (30, 3.0), (20, 5.0)]:
        ...     latest.add(step, value)
        >>> latest.mean()
        4.0
    """

    def __init__(self, window: int = WINDOW, episodes: Iterable[Sequence[float]] = ()) -> None:
        self.window = window
        self._kept: list[tuple[int, float]] = []  # at most ``window``, sorted by step
        for step, value in episodes:
            self.add(step, value)

    def add(self, step: float, value: float) -> None:
        """One more episode, ended at global ``step`` with return ``value``."""
        bisect.insort(self._kept, (int(step), float(value)))
        if len(self._kept) > self.window:
            del self._kept[0]

    def mean(self) -> float:
        """As :func:`final_mean_return` of every episode added (NaN before the first)."""
        kept = self._kept
        return sum(value for _, value in kept) / len(kept) if kept else float("nan")


def steps_to_threshold(curve: Sequence[Sequence[float]], threshold: float) -> int | None:
    """The first step at which the curve reaches ``threshold``, or None if it never does."""
    return next((int(step) for step, value in curve if value >= threshold), None)


def curve_auc(curve: Sequence[Sequence[float]], budget: int) -> float:
    """Area under the curve over [0, budget] divided by ``budget``: the mean return during
    training. The curve is held at its first value before its first point and at its last after.
    """
    if not curve or budget <= 0:
        return float("nan")
    points = [(0, curve[0][1]), *((int(s), float(v)) for s, v in curve if s <= budget)]
    points.append((budget, points[-1][1]))
    area = sum(
        (s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(points, points[1:], strict=False)
    )
    return area / budget
