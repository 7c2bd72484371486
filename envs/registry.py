"""`make_env(env_id, seed)`: one entry point to every environment family, by gymnasium id.

Families, chosen by the id's prefix:
- `ALE/<Game>-v5`: Atari through ale-py with the standard preprocessing (`envs.atari`);
- `MinAtar/<Game>-v1`: the five MinAtar games (`envs.minatar`);
- `pathevo/Labyrinth…`: first-person 3D mazes (`envs.labyrinth`; the engine loads on first use);
- anything else gymnasium registers (classic control: CartPole-v1, Acrobot-v1, …): `gymnasium.make`.

Heavy imports (ale-py, minatar, the Labyrinth renderer) happen only when a family is used.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

from pathevo.envs.minatar import minatar_ids

FAMILIES: tuple[str, ...] = ("ale", "minatar", "labyrinth", "control")
"""Families `list_env_ids` knows, in listing order."""

_PREFIXES = {"ale": "ALE/", "minatar": "MinAtar/", "labyrinth": "pathevo/Labyrinth"}
_CLASSIC_CONTROL = "gymnasium.envs.classic_control"


def _family(env_id: str) -> str:
    """The family an id belongs to by prefix; "gymnasium" for everything else."""
    return next((f for f, prefix in _PREFIXES.items() if env_id.startswith(prefix)), "gymnasium")


def _gymnasium_ids() -> list[str]:
    """Ids gymnasium.make serves as they are: not one of our families, not a legacy ALE id.

    ale-py also registers v0/v4 ids (`PongNoFrameskip-v4`, …); they are rejected so that every
    Atari env gets the same preprocessing, whatever happened to import ale-py first.
    """
    return sorted(
        env_id
        for env_id, spec in gym.registry.items()
        if _family(env_id) == "gymnasium" and not str(spec.entry_point).startswith("ale_py")
    )


def _family_ids(family: str) -> list[str]:
    """Ids of one family (or of the gymnasium fallback); ImportError if ale-py cannot load."""
    if family == "ale":
        from pathevo.envs.atari import ale_ids

        return ale_ids()
    if family == "minatar":
        return minatar_ids()
    if family == "labyrinth":
        return sorted(i for i in gym.registry if i.startswith(_PREFIXES["labyrinth"]))
    if family == "control":
        return sorted(
            env_id
            for env_id, spec in gym.registry.items()
            if str(spec.entry_point).startswith(_CLASSIC_CONTROL)
        )
    return _gymnasium_ids()


def list_env_ids(family: str | None = None) -> list[str]:
    """Registered ids of one family ("ale", "minatar", "labyrinth", "control"), or of all.

    With `family=None`, a family whose backend cannot be imported (ale-py) is left out; asking for
    it by name raises the ImportError instead.

    Example:
        >>> "MinAtar/Breakout-v1" in list_env_ids("minatar")
        True
    """
    if family is None:
        ids: list[str] = []
        for name in FAMILIES:
            try:
                ids += _family_ids(name)
            except ImportError:
                continue
        return ids
    if family not in FAMILIES:
        raise ValueError(f"unknown environment family {family!r}; one of {', '.join(FAMILIES)}")
    return _family_ids(family)


def _unknown_id_message(env_id: str) -> str:
    """One line naming the bad id and the closest known ids (case-insensitive difflib)."""
    known = {i.lower(): i for i in [*list_env_ids(), *_gymnasium_ids()]}
    close = [known[i] for i in difflib.get_close_matches(env_id.lower(), known, n=3)]
    if close:
        return f"unknown environment id {env_id!r}; did you mean: {', '.join(close)}?"
    return f"unknown environment id {env_id!r}; run `python -m pathevo.envs` to list the known ids"


def _seed(env: gym.Env, seed: int) -> None:
    """Seed the env's RNG (through one reset) and its spaces, so the run is reproducible."""
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    env.reset(seed=seed)


def make_env(env_id: str, seed: int, **kwargs: Any) -> gym.Env:
    """Build the env for `env_id` with its family's standard wrappers, seeded with `seed`.

    The env has been reset once with `seed`: a later `reset()` continues that seeded stream, and
    `reset(seed=seed)` replays the first episode. Keyword arguments go to the family's factory
    (e.g. `repeat_action_probability` for Atari, `sticky_action_prob` for MinAtar,
    `max_episode_steps` or `render_mode` for anything built by `gymnasium.make`).

    Raises:
        ValueError: unknown id; the one-line message suggests close known ids.
        ImportError: the family's backend (ale-py, minatar, ViZDoom) cannot be imported.

    Example:
        >>> env = make_env("MinAtar/Breakout-v1", seed=0)
        >>> env.observation_space.shape
        (4, 10, 10)
    """
    family = _family(env_id)
    if env_id not in _family_ids(family):
        raise ValueError(_unknown_id_message(env_id))
    if family == "ale":
        from pathevo.envs.atari import make_atari_env

        env = make_atari_env(env_id, **kwargs)
    elif family == "labyrinth":
        from pathevo.envs.labyrinth import make_labyrinth_env

        env = make_labyrinth_env(env_id, seed, **kwargs)
    else:
        env = gym.make(env_id, **kwargs)
    _seed(env, seed)
    return env
