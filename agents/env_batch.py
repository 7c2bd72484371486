"""A worker's batch of environments, stepped in lockstep with automatic restarts.

An A3C worker (Mnih et al. 2016, arXiv:1602.01783) that steps E environments batches their
inference into one forward pass per step. Three implementations with one interface:

* :class:`EnvBatch`: E `envs.make_env` environments in a Python loop (any registered id);
* :class:`AtariVectorBatch`: E ALE games in ale-py's C++ vector env on the worker's thread, with
  the same preprocessing as `make_env` and without the Python wrappers' per-step cost;
* :class:`MinAtarBatch`: E MinAtar games stepped past gymnasium's wrappers, observations
  written into one buffer (the same steps as :class:`EnvBatch` of them, at a fraction of the
  cost).

:func:`make_env_batch` picks a batch by the id's prefix (:data:`BATCHES`). All keep ``obs``
([E, ...], the observations to act on), ``starts`` ([E] bool, obs is an episode's first) and
the returns and lengths of running episodes. An episode that ends (terminated or truncated)
restarts within the same step, so ``obs`` is the new episode's first observation; the last
observation of an episode cut by a time limit comes with the step (``Step.final_obs``), so that
a learner can bootstrap from its value instead of treating the cut as the end of the task.
"""

from __future__ import annotations

from collections.abc import Callable
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


class MinAtarBatch(EnvBatch):
    """E MinAtar games (:class:`pathevo.envs.minatar.MinAtarEnv`), each built and seeded by
    `make_env` as :class:`EnvBatch` builds them and giving the same steps, but stepped directly:
    gymnasium's wrappers (order and time-limit checks, three calls deep) would cost more than
    the games themselves, and the observations go into one [E, C, 10, 10] buffer per step
    instead of E arrays and a stack. The time limit of the id's spec is counted here."""

    def __init__(self, env_id: str, seeds: list[int]) -> None:
        super().__init__(env_id, seeds)  # built, seeded and reset as the Python loop's
        self.games = [env.unwrapped for env in self.envs]
        spec = self.envs[0].spec
        self.time_limit = spec.max_episode_steps if spec is not None else None
        self.elapsed = np.zeros(len(self.envs), dtype=np.int64)  # steps of the running episodes

    def step(self, actions: np.ndarray) -> Step:
        """Act in every game (actions [E]); ended games restart."""
        size = len(self.games)
        obs = np.empty(self.obs.shape, dtype=np.float32)  # fresh: a kept graph holds the last
        rewards = np.zeros(size, dtype=np.float32)
        dones = np.zeros(size, dtype=bool)
        truncated = np.zeros(size, dtype=bool)
        self.elapsed += 1
        finals: dict[int, np.ndarray] = {}
        for index, (game, action) in enumerate(zip(self.games, actions.tolist(), strict=True)):
            rewards[index], terminated = game.act(action)
            cut = self.time_limit is not None and self.elapsed[index] >= self.time_limit
            if terminated or cut:
                dones[index], truncated[index] = True, cut and not terminated
                if truncated[index]:
                    game.write_obs(obs[index])
                    finals[index] = obs[index].copy()
                game.reset()
                self.elapsed[index] = 0
            game.write_obs(obs[index])
        self.obs = torch.from_numpy(obs)
        self.starts = torch.from_numpy(dones)
        final_obs = None
        if finals:  # only the truncated rows are read
            final_obs = self.obs.clone()
            for index, final in finals.items():
                final_obs[index] = torch.from_numpy(final)
        finished = self.episodes.update(rewards, dones)
        return Step(
            torch.from_numpy(rewards), self.starts.clone(), torch.from_numpy(truncated),
            final_obs, finished,
        )  # fmt: skip


BATCHES: dict[str, Callable[[str, list[int]], EnvBatchLike]] = {
    "ALE/": AtariVectorBatch,
    "MinAtar/": MinAtarBatch,
}
"""Batches made for one family of ids, by id prefix; other ids get :class:`EnvBatch`."""


def make_env_batch(env_id: str, seeds: list[int]) -> EnvBatchLike:
    """The fastest batch for ``env_id``: the one :data:`BATCHES` names for its prefix, else
    :class:`EnvBatch`."""
    for prefix, batch in BATCHES.items():
        if env_id.startswith(prefix):
            return batch(env_id, seeds)
    return EnvBatch(env_id, seeds)
