"""Learning curves, steps to threshold and AUC on hand-made episode lists."""

import math
import random

import pytest

from pathevo.agents.curves import (
    LatestReturns,
    curve_auc,
    final_mean_return,
    learning_curve,
    steps_to_threshold,
)


def test_running_mean_over_the_window_in_step_order():
    episodes = [(30, 3.0), (10, 1.0), (20, 2.0), (40, 10.0)]
    assert learning_curve(episodes, window=2) == [[10, 1.0], [20, 1.5], [30, 2.5], [40, 6.5]]
    assert learning_curve(episodes, window=2, full_window=True)[0] == [20, 1.5]
    assert learning_curve(episodes[:1], window=5, full_window=True) == [[30, 3.0]]


def test_thinning_keeps_the_last_point():
    episodes = [(step, float(step)) for step in range(1, 1001)]
    curve = learning_curve(episodes, window=1, points=10)
    assert len(curve) == 10 and curve[-1] == [1000, 1000.0] and curve[0] == [1, 1.0]


def test_final_mean_return_uses_the_last_episodes_to_end():
    episodes = [(step, float(step)) for step in range(1, 31)]
    assert final_mean_return(episodes, window=20) == pytest.approx(sum(range(11, 31)) / 20)
    assert math.isnan(final_mean_return([]))


def test_steps_to_threshold_and_auc():
    curve = [[100, 1.0], [200, 5.0], [300, 9.0]]
    assert steps_to_threshold(curve, 5.0) == 200
    assert steps_to_threshold(curve, 10.0) is None
    # held at 1 over [0, 100], trapezoids up to 300, held at 9 until 400: (100 + 300 + 700 + 900)
    assert curve_auc(curve, 400) == pytest.approx(2000 / 400)
    assert math.isnan(curve_auc([], 100))


def test_latest_returns_agrees_with_final_mean_return_as_episodes_arrive_out_of_order():
    rng = random.Random(0)
    episodes: list[tuple[int, float]] = []
    latest = LatestReturns(window=5)
    assert math.isnan(latest.mean())
    for index in range(300):
        # workers report late and in bursts: steps arrive out of order, some repeat
        step = max(0, index * 10 + rng.randint(-60, 20))
        episode = (step, float(rng.randint(-3, 9)))
        episodes.append(episode)
        latest.add(*episode)
        assert latest.mean() == pytest.approx(final_mean_return(episodes, window=5))
    resumed = LatestReturns(window=5, episodes=episodes)  # a resumed phase starts from its log
    assert resumed.mean() == pytest.approx(final_mean_return(episodes, window=5))
