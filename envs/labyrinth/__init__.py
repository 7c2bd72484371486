"""Labyrinth-like 3D first-person levels (PathNet's second RL domain), registered with gymnasium.

Fernando et al. 2017 (arXiv:1701.08734) trained PathNet on DeepMind Lab levels (Beattie et al.
2016, arXiv:1612.03801); pathevo imitates them on ViZDoom (Kempka et al. 2016,
arXiv:1605.02097), see :mod:`pathevo.envs.labyrinth.doom` and docs/labyrinth.md. Importing this
package registers the ids; the engine is imported only when an environment is made.

Example:
    >>> from pathevo.envs.labyrinth import make_labyrinth_env
    >>> env = make_labyrinth_env("pathevo/Labyrinth-NavMaze-v0", seed=0)
    >>> env.observation_space.shape, env.action_space.n
    ((4, 84, 84), 8)
    >>> env.close()
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

# 60 s of game time (DeepMind Lab's episode length for these levels) at frame skip 4.
MAX_EPISODE_STEPS = 525
LABYRINTH_TASKS = ("NavMaze", "SeekAvoid", "StairwayToMelon", "LaserTag")
LABYRINTH_IDS = tuple(f"pathevo/Labyrinth-{task}-v0" for task in LABYRINTH_TASKS)

for _task, _env_id in zip(LABYRINTH_TASKS, LABYRINTH_IDS, strict=True):
    if _env_id not in gym.registry:
        gym.register(
            id=_env_id,
            entry_point="pathevo.envs.labyrinth.doom:make_doom_env",
            kwargs={"task": _task},
            max_episode_steps=MAX_EPISODE_STEPS,
        )


def make_labyrinth_env(env_id: str, seed: int, **kwargs: Any) -> gym.Env:
    """Make a Labyrinth id, reset it with ``seed`` and seed its spaces.

    ``kwargs`` go to :func:`pathevo.envs.labyrinth.doom.make_doom_env` (``frame_size``,
    ``grayscale``, ``frame_stack``, ``frame_skip``, ``render_mode``) or to ``gymnasium.make``
    (``max_episode_steps``).
    """
    if env_id not in LABYRINTH_IDS:
        raise ValueError(f"unknown Labyrinth id {env_id!r}; known: {', '.join(LABYRINTH_IDS)}")
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    return env
