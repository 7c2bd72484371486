"""MinAtar: ids, channels-first observations, seeding, sticky actions, time limit, env checker."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pathevo.envs import make_env

CHANNELS = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}
ACTIONS = {"Asterix": 5, "Breakout": 3, "Freeway": 3, "Seaquest": 6, "SpaceInvaders": 4}


@pytest.mark.parametrize("game", sorted(CHANNELS))
def test_game(game: str) -> None:
    env = make_env(f"MinAtar/{game}-v1", seed=0)
    obs, _ = env.reset()
    assert obs.shape == (CHANNELS[game], 10, 10) and obs.dtype == np.float32
    assert obs.flags.c_contiguous
    assert set(np.unique(obs)) <= {0.0, 1.0} and obs.any()
    assert env.action_space == gym.spaces.Discrete(ACTIONS[game])
    assert env.spec is not None and env.spec.max_episode_steps == 10_000
    check_env(env.unwrapped)


def test_channels_first_matches_minatar_state() -> None:
    env = make_env("MinAtar/Breakout-v1", seed=0)
    obs, _ = env.reset()
    state = env.unwrapped._game.state()  # [10, 10, C] bool
    assert np.array_equal(obs, np.moveaxis(state, -1, 0).astype(np.float32))


def test_gymnasium_make_and_options() -> None:
    env = gym.make("MinAtar/Freeway-v1", sticky_action_prob=0.0, max_episode_steps=5)
    assert env.unwrapped._game.sticky_action_prob == 0.0
    env.reset(seed=0)
    truncated = [env.step(0)[3] for _ in range(5)]
    assert truncated == [False] * 4 + [True]
    assert make_env("MinAtar/Freeway-v1", seed=0).unwrapped._game.sticky_action_prob == 0.1
    full = make_env("MinAtar/Freeway-v1", seed=0, minimal_action_set=False)
    assert full.action_space.n == 6


def test_breakout_terminates() -> None:
    env = make_env("MinAtar/Breakout-v1", seed=0)
    env.reset()
    for _ in range(1000):
        _, _, terminated, truncated, _ = env.step(0)
        if terminated:
            break
    assert terminated and not truncated
