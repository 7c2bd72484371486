"""Atari 2600 games through ale-py with the standard DQN preprocessing.

References: Bellemare et al. 2013 (the Arcade Learning Environment); Mnih et al. 2015 (84×84
gray frames, frame skip 4 with max-pooling of the last two frames, 4 stacked frames, up to 30
no-op starts); Machado et al. 2018 (sticky actions, p = 0.25, the ALE v5 default, as the source of
stochasticity).

Observations are uint8 `[4, 84, 84]` in [0, 255] (stacked frames first, for NCHW conv nets);
scale by 1/255 in the network. ROMs ship with ale-py; nothing is downloaded.

`make_atari_env` is one gymnasium env (Python wrappers); `make_atari_vector_env` is ale-py's C++
vector env with the same preprocessing, which A3C workers use to step their batch of games.
"""

from __future__ import annotations

from typing import Any

import ale_py
import gymnasium as gym
from ale_py.vector_env import AtariVectorEnv
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

gym.register_envs(ale_py)

FRAME_SKIP = 4
SCREEN_SIZE = 84
FRAME_STACK = 4
NOOP_MAX = 30
REPEAT_ACTION_PROBABILITY = 0.25


def ale_ids() -> list[str]:
    """The `ALE/<Game>-v5` ids that ale-py registers (one per shipped single-player ROM), sorted."""
    return sorted(env_id for env_id in gym.registry if env_id.startswith("ALE/"))


def make_atari_env(
    env_id: str,
    *,
    repeat_action_probability: float = REPEAT_ACTION_PROBABILITY,
    noop_max: int = NOOP_MAX,
    terminal_on_life_loss: bool = False,
    full_action_space: bool = False,
    **kwargs: Any,
) -> gym.Env:
    """Build an `ALE/<Game>-v5` env with the standard preprocessing (unseeded).

    Frame skipping happens in `AtariPreprocessing` (the base env runs with `frameskip=1`) so that
    the last two frames can be max-pooled; the ALE still applies sticky actions on every frame.
    Extra keyword arguments (e.g. `render_mode`, `mode`, `difficulty`) go to `gymnasium.make`.

    Example:
        >>> env = make_atari_env("ALE/Pong-v5")
        >>> env.observation_space.shape
        (4, 84, 84)
    """
    # AtariPreprocessing reads the gray screen from the ALE itself; the base env's own per-frame
    # observation is thrown away, and a gray one is the cheapest that the wrapper accepts.
    kwargs.setdefault("obs_type", "grayscale")
    env = gym.make(
        env_id,
        frameskip=1,
        repeat_action_probability=repeat_action_probability,
        full_action_space=full_action_space,
        **kwargs,
    )
    env = AtariPreprocessing(
        env,
        noop_max=noop_max,
        frame_skip=FRAME_SKIP,
        screen_size=SCREEN_SIZE,
        terminal_on_life_loss=terminal_on_life_loss,
        grayscale_obs=True,
    )
    return FrameStackObservation(env, FRAME_STACK)


def rom_name(env_id: str) -> str:
    """``ALE/SpaceInvaders-v5`` -> ``space_invaders`` (ale-py's ROM id, from the registry)."""
    return gym.spec(env_id).kwargs["game"]


def make_atari_vector_env(
    env_id: str,
    num_envs: int,
    num_threads: int = 1,
    max_episode_frames: int = 108_000,
    *,
    repeat_action_probability: float = REPEAT_ACTION_PROBABILITY,
    noop_max: int = NOOP_MAX,
) -> AtariVectorEnv:
    """ale-py's C++ vector env of ``num_envs`` games with the preprocessing of `make_atari_env`.

    84×84 gray, frame skip 4 with max-pooling, 4 stacked frames, up to 30 no-ops, sticky
    actions 0.25, the minimal action set, unclipped rewards, episodes truncated after
    ``max_episode_frames`` frames (108,000, the v5 limit): the same frames as `make_atari_env`
    once the stack is full (tested). One difference: the frame stack of a new episode is
    zero-padded (gymnasium's repeats the first frame). A finished game restarts within the step
    that ended it, whose observation is then the new episode's first (the final one is in the
    info). Seed it with ``reset(seed=np.array([...]))``, one seed per game.
    """
    return AtariVectorEnv(
        rom_name(env_id), num_envs, num_threads=num_threads,
        repeat_action_probability=repeat_action_probability, img_height=SCREEN_SIZE,
        img_width=SCREEN_SIZE, stack_num=FRAME_STACK, frameskip=FRAME_SKIP, noop_max=noop_max,
        reward_clipping=False, use_fire_reset=False, max_num_frames_per_episode=max_episode_frames,
        autoreset_mode="SameStep",
    )  # fmt: skip
