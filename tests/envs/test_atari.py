"""ALE Atari: standard preprocessing, sticky actions, life-loss option."""

from __future__ import annotations

import numpy as np
import pytest

from pathevo.envs import make_env
from pathevo.envs.atari import make_atari_env, make_atari_vector_env, rom_name


def test_pong_preprocessing() -> None:
    env = make_env("ALE/Pong-v5", seed=0)
    obs, _ = env.reset()
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.high.max() == 255
    assert env.action_space.n == 6  # minimal action set, not the full 18
    ale = env.unwrapped
    assert ale._frameskip == 1  # frame skipping (with max-pooling) is the wrapper's job
    assert ale.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    obs, reward, terminated, truncated, _ = env.step(0)
    assert obs.shape == (4, 84, 84) and not terminated and not truncated
    # the frame stack shifts by one preprocessed frame per step
    assert np.array_equal(env.step(0)[0][:3], obs[1:])


def test_options() -> None:
    env = make_env(
        "ALE/Breakout-v5", seed=0, repeat_action_probability=0.0, terminal_on_life_loss=True
    )
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    # FIRE launches the ball; the paddle never moves, so a life is lost soon
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(1)
        if terminated or truncated:
            break
    assert terminated and info["lives"] == 4


def test_rom_names_come_from_the_registry() -> None:
    assert rom_name("ALE/Pong-v5") == "pong"
    assert rom_name("ALE/SpaceInvaders-v5") == "space_invaders"
    assert rom_name("ALE/TicTacToe3D-v5") == "tic_tac_toe_3d"  # not tic_tac_toe3_d


def test_vector_env_gives_the_frames_of_the_gymnasium_preprocessing() -> None:
    """Without sticky actions and no-ops both are deterministic: the same stacked frames and
    rewards once the stack is full (a new episode's stack is zero-padded in the vector env)."""
    vector = make_atari_vector_env("ALE/Breakout-v5", 2, repeat_action_probability=0.0, noop_max=0)
    single = make_atari_env("ALE/Breakout-v5", repeat_action_probability=0.0, noop_max=0)
    assert vector.single_observation_space == single.observation_space
    assert vector.single_action_space == single.action_space
    stacked, _ = vector.reset(seed=np.array([0, 1]))
    obs, _ = single.reset(seed=0)
    assert stacked.shape == (2, 4, 84, 84) and stacked.dtype == np.uint8
    assert np.array_equal(stacked[0, -1], obs[-1]) and not stacked[0, :-1].any()
    for step, action in enumerate([1, 2, 3, 2, 1, 3, 3, 2, 0, 1, 2, 2]):  # FIRE, then move
        stacked, rewards, *_ = vector.step(np.array([action, action]))
        obs, reward, *_ = single.step(action)
        assert rewards[0] == reward
        if step >= 2:
            assert np.array_equal(stacked[0], obs), step
    vector.close()
    single.close()
