"""MinAtar: five miniature Atari games on a 10×10 grid, small enough for CPU learning curves.

Reference: Young & Tian 2019, "MinAtar: An Atari-Inspired Testbed for Thorough and Reproducible
Reinforcement Learning Experiments", arXiv:1903.03176.

Ids are `MinAtar/<Game>-v1` with the game's minimal action set, as in `minatar.gym`. We wrap
`minatar.Environment` ourselves instead of using `minatar.gym.BaseEnv` because that class returns
channels-last bool observations, does not seed `np_random` or the action space through
`reset(seed=...)`, and keeps the sticky last action across resets, so `reset(seed=s)` on a used
env does not replay the episode a fresh env would.

Observations are float32 `[C, 10, 10]` (channels first, for NCHW conv nets) with values in {0, 1},
one channel per object kind, so they need no scaling. Sticky actions use MinAtar's default
probability 0.1 (the MinAtar analogue of Machado et al. 2018).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

GAMES: dict[str, str] = {
    "Asterix": "asterix",
    "Breakout": "breakout",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}
"""Id name → MinAtar game module name."""

MAX_EPISODE_STEPS = 10_000
"""Truncation guard: a good agent can play Asterix or Seaquest for a very long time."""

STICKY_ACTION_PROB = 0.1


class MinAtarEnv(gym.Env[np.ndarray, np.int64]):
    """One MinAtar game as a gymnasium env with channels-first float32 observations.

    Example:
        >>> env = MinAtarEnv("breakout")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape
        (4, 10, 10)
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        game: str,
        sticky_action_prob: float = STICKY_ACTION_PROB,
        difficulty_ramping: bool = True,
        minimal_action_set: bool = True,
    ) -> None:
        # Imported here, not at module top: `minatar` imports matplotlib and seaborn (~3 s), and
        # `import pathevo.envs` registers these ids without paying for that.
        from minatar import Environment

        self._game = Environment(
            game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping
        )
        n_actions = self._game.num_actions()
        self._actions = (
            self._game.minimal_action_set() if minimal_action_set else list(range(n_actions))
        )
        rows, cols, channels = self._game.state_shape()
        self.action_space = spaces.Discrete(len(self._actions))
        self.observation_space = spaces.Box(0.0, 1.0, (channels, rows, cols), np.float32)

    def _obs(self) -> np.ndarray:
        # game state: [10, 10, C] bool -> [C, 10, 10] float32
        return np.ascontiguousarray(self._game.state().transpose(2, 0, 1), dtype=np.float32)

    def write_obs(self, out: np.ndarray) -> None:
        """Write the observation ``step`` and ``reset`` return into ``out`` ([C, 10, 10]
        float32, e.g. a row of a batch's buffer): no array of its own."""
        out[...] = self._game.state().transpose(2, 0, 1)

    def act(self, action: int) -> tuple[float, bool]:
        """``step`` without the observation (read it with :meth:`write_obs`): (reward,
        terminated). A batch of games steps through here, past gymnasium's wrappers."""
        reward, done = self._game.act(self._actions[action])
        return float(reward), bool(done)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; a seed reseeds the game's RNG (spawns, sticky actions)."""
        super().reset(seed=seed)
        if seed is not None:
            self._game.seed(seed)
        # MinAtar keeps the last action across episodes; reset it so a seeded episode replays.
        self._game.last_action = 0
        self._game.reset()
        return self._obs(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Act once; MinAtar ends episodes itself (terminated), the time limit truncates."""
        reward, terminated = self.act(int(action))
        return self._obs(), reward, terminated, False, {}


def register_minatar_envs() -> None:
    """Register `MinAtar/<Game>-v1` for the five games (cheap: the entry point loads lazily)."""
    for name, game in GAMES.items():
        gym.register(
            id=f"MinAtar/{name}-v1",
            entry_point="pathevo.envs.minatar:MinAtarEnv",
            kwargs={"game": game},
            max_episode_steps=MAX_EPISODE_STEPS,
        )


def minatar_ids() -> list[str]:
    """The registered MinAtar ids, sorted."""
    return [f"MinAtar/{name}-v1" for name in sorted(GAMES)]


register_minatar_envs()
