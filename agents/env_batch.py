"""A worker's batch of environments, stepped in lockstep with automatic restarts.

An A3C worker (Mnih et al. 2016, arXiv:1602.01783) that steps E environments batches their
inference into one forward pass per step. Two implementations with one interface:

* :class:`EnvBatch`: E `envs.make_env` environments in a Python loop (any registered id);
* :class:`AtariVectorBatch`: E ALE games in ale-py's C++ vector env on the worker's thread, with
  the same preprocessing as `make_env` and without the Python wrappers' per-step cost.

:func:`make_env_batch` picks the vector env for ``ALE/`` ids. Both keep ``obs`` ([E, ...], the
observations to act on), ``starts`` ([E] bool, obs is an episode's first) and the returns and
lengths of running episodes. An episode that ends (terminated or truncated) restarts within the
same step, so ``obs`` is the new episode's first observation; the last observation of an episode
cut by a time limit comes with the step (``Step.final_obs``), so that a learner can bootstrap
from its value instead of treating the cut as the end of the task.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import torch

from pathevo.envs import make_env
from pathevo.envs.atari import make_atari_vector_env

Finished = list[tuple[int, float, int]]
"""Episodes that ended in a step: (env index, return, length)."""


class Step(NamedTuple):
    """What one step of E environments gives."""

    rewards: torch.Tensor  # [E] float
    dones: torch.Tensor  # [E] bool: the episode ended with this step (and restarted)
    truncated: torch.Tensor  # [E] bool: ended by a time limit, not by the task itself
    final_obs: torch.Tensor | None  # [E, ...] the step's observations before any restart, or
    # None when no episode was truncated (only the truncated rows are needed)
    finished: Finished


class EnvBatchLike(Protocol):
    """What a worker needs of its environments (both batches below provide it)."""

    obs: torch.Tensor
    starts: torch.Tensor

    def __len__(self) -> int: ...

    def step(self, actions: np.ndarray) -> Step: ...

    def close(self) -> None: ...


class EpisodeTracker:
    """Returns and lengths of E running episodes; reports the ones that end."""

    def __init__(self, size: int) -> None:
        self.returns = np.zeros(size)
        self.lengths = np.zeros(size, dtype=np.int64)

    def update(self, rewards: np.ndarray, dones: np.ndarray) -> Finished:
        """Add one step (rewards [E], dones [E] bool) -> the episodes that ended with it."""
        self.returns += rewards
        self.lengths += 1
        finished = [
            (int(i), float(self.returns[i]), int(self.lengths[i])) for i in np.flatnonzero(dones)
        ]
        self.returns[dones] = 0.0
        self.lengths[dones] = 0
        return finished


class EnvBatch:
    """E `make_env` environments stepped in a Python loop, each reset when its episode ends."""

    def __init__(self, env_id: str, seeds: list[int]) -> None:
        self.envs = [make_env(env_id, seed) for seed in seeds]
        self.obs = torch.as_tensor(np.stack([env.reset()[0] for env in self.envs]))  # [E, ...]
        self.starts = torch.ones(len(self.envs), dtype=torch.bool)  # [E]
        self.episodes = EpisodeTracker(len(self.envs))

    def __len__(self) -> int:
        return len(self.envs)

    def step(self, actions: np.ndarray) -> Step:
        """Act in every env (actions [E]); ended episodes restart."""
        size = len(self.envs)
        rewards = np.zeros(size, dtype=np.float32)
        dones = np.zeros(size, dtype=bool)
        truncated = np.zeros(size, dtype=bool)
        observations, finals = [], []
        for index, (env, action) in enumerate(zip(self.envs, actions.tolist(), strict=True)):
            obs, rewards[index], terminated, cut, _ = env.step(action)
            finals.append(obs)
            if terminated or cut:
                dones[index], truncated[index] = True, cut and not terminated
                obs, _ = env.reset()
            observations.append(obs)
        self.obs = torch.as_tensor(np.stack(observations))
        self.starts = torch.from_numpy(dones)
        final_obs = torch.as_tensor(np.stack(finals)) if truncated.any() else None
        finished = self.episodes.update(rewards, dones)
        return Step(
            torch.from_numpy(rewards), self.starts.clone(), torch.from_numpy(truncated),
            final_obs, finished,
        )  # fmt: skip

    def close(self) -> None:
        for env in self.envs:
            env.close()


class AtariVectorBatch:
    """E ALE games in ale-py's C++ vector env (one thread), game j seeded ``seeds[j]``."""

    def __init__(self, env_id: str, seeds: list[int], max_episode_frames: int = 108_000) -> None:
        self.env = make_atari_vector_env(
            env_id, len(seeds), num_threads=1, max_episode_frames=max_episode_frames
        )
        obs, _ = self.env.reset(seed=np.asarray(seeds, dtype=np.int64))
        self.obs = torch.from_numpy(obs)  # [E, 4, 84, 84] uint8
        self.starts = torch.ones(len(seeds), dtype=torch.bool)
        self.episodes = EpisodeTracker(len(seeds))

    def __len__(self) -> int:
        return len(self.starts)

    def step(self, actions: np.ndarray) -> Step:
        """Act in every game (actions [E]); ended games restart."""
        obs, rewards, terminated, truncated, info = self.env.step(actions.astype(np.int64))
        dones = terminated | truncated
        truncated = truncated & ~terminated
        rewards = rewards.astype(np.float32)
        self.obs = torch.from_numpy(obs)  # a fresh array every step
        self.starts = torch.from_numpy(dones)
        final_obs = None
        if truncated.any():  # the vector env hands ended games' last observations in the info
            final_obs = torch.from_numpy(
                np.where(dones[:, None, None, None], info["final_obs"], obs)
            )
        finished = self.episodes.update(rewards, dones)
        return Step(
            torch.from_numpy(rewards), self.starts.clone(), torch.from_numpy(truncated),
            final_obs, finished,
        )  # fmt: skip

    def close(self) -> None:
        self.env.close()


def make_env_batch(env_id: str, seeds: list[int]) -> EnvBatchLike:
    """The fastest batch for ``env_id``: ale-py's vector env for ALE ids, else :class:`EnvBatch`."""
    if env_id.startswith("ALE/"):
        return AtariVectorBatch(env_id, seeds)
    return EnvBatch(env_id, seeds)
