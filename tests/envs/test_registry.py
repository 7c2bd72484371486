"""make_env dispatch, seeding, unknown-id errors and the `python -m pathevo.envs` listing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import pathevo.envs.labyrinth
from pathevo.envs import list_env_ids, make_env

ROOT = Path(__file__).resolve().parents[2]


def rollout(
    env: gym.Env, steps: int, seed: int | None = None
) -> tuple[list[np.ndarray], list[float]]:
    """Observations and rewards of one episode under fixed (cycling) actions, up to `steps`."""
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for t in range(steps):
        obs, reward, terminated, truncated, _ = env.step(t % env.action_space.n)
        observations.append(obs)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    return observations, rewards


def test_import_envs_is_light() -> None:
    code = (
        "import sys, envs; heavy = [m for m in ('torch', 'ale_py', 'minatar') if m in sys.modules];"
        "print(heavy); sys.exit(bool(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env_id", "shape", "dtype"),
    [
        ("CartPole-v1", (4,), np.float32),
        ("Acrobot-v1", (6,), np.float32),
        ("MountainCar-v0", (2,), np.float32),
        ("Pendulum-v1", (3,), np.float32),
        ("MinAtar/Breakout-v1", (4, 10, 10), np.float32),
        ("ALE/Pong-v5", (4, 84, 84), np.uint8),
    ],
)
def test_make_env_observation(env_id: str, shape: tuple[int, ...], dtype: type) -> None:
    env = make_env(env_id, seed=0)
    obs, _ = env.reset()
    assert obs.shape == env.observation_space.shape == shape
    assert obs.dtype == dtype
    assert env.observation_space.contains(obs)
    env.close()


@pytest.mark.parametrize(
    ("env_id", "steps"), [("CartPole-v1", 50), ("MinAtar/Breakout-v1", 100), ("ALE/Pong-v5", 40)]
)
def test_same_seed_same_trajectory(env_id: str, steps: int) -> None:
    first, second = make_env(env_id, seed=3), make_env(env_id, seed=3)
    obs_a, rew_a = rollout(first, steps)
    obs_b, rew_b = rollout(second, steps)
    assert rew_a == rew_b
    assert len(obs_a) == len(obs_b)
    assert all(np.array_equal(a, b) for a, b in zip(obs_a, obs_b, strict=True))
    # reset(seed=...) on a used env replays the episode
    obs_c, rew_c = rollout(first, steps, seed=11)
    obs_d, rew_d = rollout(first, steps, seed=11)
    assert rew_c == rew_d
    assert all(np.array_equal(c, d) for c, d in zip(obs_c, obs_d, strict=True))
    assert first.action_space.sample() == second.action_space.sample()


def test_different_seeds_differ() -> None:
    assert not np.array_equal(
        make_env("CartPole-v1", seed=0).reset()[0], make_env("CartPole-v1", seed=1).reset()[0]
    )


@pytest.mark.parametrize(
    ("env_id", "suggestion"),
    [
        ("ALE/Pongg-v5", "ALE/Pong-v5"),
        ("Pong-v5", "ALE/Pong-v5"),
        ("MinAtar/Breakout-v0", "MinAtar/Breakout-v1"),
        ("CartPol-v1", "CartPole-v1"),
        ("cartpole-v1", "CartPole-v1"),
    ],
)
def test_unknown_id_suggests_close_names(env_id: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match="did you mean") as info:
        make_env(env_id, seed=0)
    message = str(info.value)
    assert "\n" not in message
    assert repr(env_id) in message
    assert suggestion in message.split("did you mean:")[1]


@pytest.mark.parametrize("env_id", ["zzzzzz", "PongNoFrameskip-v4", "Pong-v4"])
def test_unknown_or_unsupported_id(env_id: str) -> None:
    with pytest.raises(ValueError, match="unknown environment id"):
        make_env(env_id, seed=0)


def test_list_env_ids() -> None:
    ale, minatar, control = list_env_ids("ale"), list_env_ids("minatar"), list_env_ids("control")
    assert "ALE/Pong-v5" in ale and all(i.startswith("ALE/") and i.endswith("-v5") for i in ale)
    assert minatar == [
        f"MinAtar/{g}-v1" for g in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
    ]
    assert {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1"} <= set(control)
    assert set(ale + minatar + control) <= set(list_env_ids())
    with pytest.raises(ValueError, match="unknown environment family"):
        list_env_ids("atari")


def test_labyrinth_ids_route_to_their_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, dict[str, Any]]] = []

    def make_labyrinth_env(env_id: str, seed: int, **kwargs: Any) -> gym.Env:
        calls.append((env_id, seed, kwargs))
        return gym.make("CartPole-v1")

    monkeypatch.setattr(pathevo.envs.labyrinth, "make_labyrinth_env", make_labyrinth_env)
    make_env("pathevo/Labyrinth-NavMaze-v0", seed=5, frame_size=42)
    assert calls == [("pathevo/Labyrinth-NavMaze-v0", 5, {"frame_size": 42})]
    assert list_env_ids("labyrinth") == sorted(pathevo.envs.labyrinth.LABYRINTH_IDS)
    with pytest.raises(ValueError, match="did you mean: pathevo/Labyrinth-NavMaze-v0"):
        make_env("pathevo/Labyrinth-NavMase-v0", seed=0)


def test_cli_lists_ids() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pathevo.envs"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    lines = result.stdout.split()
    assert {"ALE/Pong-v5", "MinAtar/Breakout-v1", "CartPole-v1"} <= set(lines)
    only = subprocess.run(
        [sys.executable, "-m", "pathevo.envs", "minatar"], cwd=ROOT, capture_output=True, text=True
    )
    assert only.returncode == 0 and "MinAtar/Seaquest-v1" in only.stdout
    assert "ALE/Pong-v5" not in only.stdout
