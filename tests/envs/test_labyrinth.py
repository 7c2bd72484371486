"""Labyrinth-like ViZDoom levels: API conformance, seeding, observations, level design."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pathevo.envs.labyrinth import LABYRINTH_IDS, MAX_EPISODE_STEPS, make_labyrinth_env

FORWARD, STRAFE_RIGHT, TURN_LEFT, TURN_RIGHT = 0, 3, 4, 5  # envs.labyrinth.doom.NAVIGATION


@pytest.fixture(autouse=True)
def _engine_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine makes a ``_vizdoom/`` directory in the working directory: keep it in tmp."""
    monkeypatch.chdir(tmp_path)


def test_ids_cover_the_paper_levels() -> None:
    assert len(LABYRINTH_IDS) == 4
    for word in ("NavMaze", "SeekAvoid", "StairwayToMelon", "LaserTag"):
        assert f"pathevo/Labyrinth-{word}-v0" in LABYRINTH_IDS
    for env_id in LABYRINTH_IDS:
        assert gym.spec(env_id).max_episode_steps == MAX_EPISODE_STEPS


def test_unknown_id_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown Labyrinth id"):
        make_labyrinth_env("pathevo/Labyrinth-Nope-v0", seed=0)


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.parametrize("env_id", LABYRINTH_IDS)
def test_check_env_and_default_observations(env_id: str) -> None:
    env = make_labyrinth_env(env_id, seed=0)
    try:
        check_env(env)
        assert env.observation_space.shape == (4, 84, 84)
        assert env.observation_space.dtype == np.uint8
        assert isinstance(env.action_space, gym.spaces.Discrete)
        assert 4 <= env.action_space.n <= 8
        obs, _ = env.reset(seed=1)
        assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
        assert obs.flags.c_contiguous
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs in env.observation_space and isinstance(reward, float)
    finally:
        env.close()


def _rollout(env: gym.Env, n: int) -> tuple[np.ndarray, list[float]]:
    frames, rewards = [env.reset(seed=7)[0]], []
    for t in range(n):
        obs, reward, terminated, truncated, _ = env.step((3 * t) % env.action_space.n)
        frames.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            frames.append(env.reset()[0])
    return np.stack(frames), rewards


@pytest.mark.parametrize("env_id", LABYRINTH_IDS)
def test_same_seed_gives_same_frames(env_id: str) -> None:
    first = make_labyrinth_env(env_id, seed=7)
    second = make_labyrinth_env(env_id, seed=7)
    try:
        frames_a, rewards_a = _rollout(first, 40)
        frames_b, rewards_b = _rollout(second, 40)
    finally:
        first.close()
        second.close()
    np.testing.assert_array_equal(frames_a, frames_b)
    assert rewards_a == rewards_b
    assert frames_a.std() > 0  # a real picture, not a blank screen


def test_different_seeds_give_different_episodes() -> None:
    # The health-gathering arena spawns its medkits and vials at random.
    env = make_labyrinth_env("pathevo/Labyrinth-SeekAvoid-v0", seed=0)
    try:
        a = env.reset(seed=1)[0]
        b = env.reset(seed=2)[0]
        c = env.reset(seed=1)[0]
    finally:
        env.close()
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({"grayscale": False, "frame_stack": 2, "frame_size": 64}, (6, 64, 64)),
        ({"frame_stack": 1}, (1, 84, 84)),
    ],
)
def test_observation_options(kwargs: dict, shape: tuple[int, ...]) -> None:
    env = make_labyrinth_env("pathevo/Labyrinth-LaserTag-v0", seed=0, **kwargs)
    try:
        assert env.observation_space.shape == shape
        obs, *_ = env.step(0)
        assert obs.shape == shape and obs.dtype == np.uint8
    finally:
        env.close()


def test_frame_stack_holds_consecutive_frames() -> None:
    env = make_labyrinth_env("pathevo/Labyrinth-NavMaze-v0", seed=0, frame_stack=3)
    try:
        first, _ = env.reset(seed=0)
        np.testing.assert_array_equal(first[0], first[2])  # padded with the reset frame
        after, *_ = env.step(TURN_LEFT)
        np.testing.assert_array_equal(after[:2], first[1:])
        assert not np.array_equal(after[2], first[2])
    finally:
        env.close()


def _walk(env: gym.Env, plan: list[tuple[int, int]]) -> tuple[float, bool]:
    env.reset(seed=0)
    total = 0.0
    for action, repeat in plan:
        for _ in range(repeat):
            _, reward, terminated, truncated, _ = env.step(action)
            total += reward
            if terminated or truncated:
                return total, terminated
    return total, False


def test_stairway_to_melon_near_small_far_large() -> None:
    env = make_labyrinth_env("pathevo/Labyrinth-StairwayToMelon-v0", seed=0)
    try:
        assert _walk(env, [(FORWARD, 30)]) == (1.0, True)  # the apple, straight ahead
        melon = [(TURN_RIGHT, 8), (STRAFE_RIGHT, 6), (FORWARD, 25), (TURN_LEFT, 7), (FORWARD, 60)]
        assert _walk(env, melon) == (10.0, True)
        assert _walk(env, [(TURN_RIGHT, 8), (FORWARD, 20)]) == (0.0, False)  # into a wall
    finally:
        env.close()


def test_nav_maze_pays_apples_on_the_way_and_ends_at_the_goal() -> None:
    env = make_labyrinth_env("pathevo/Labyrinth-NavMaze-v0", seed=0)
    try:
        assert _walk(env, [(FORWARD, 40)]) == (7.0, False)  # the apples straight ahead
        assert _walk(env, [(TURN_LEFT, 14), (FORWARD, 30)]) == (0.0, False)  # a wall behind
        # east, south, west, south, east: 20 apples on this line through the maze, then the goal
        way = [(FORWARD, 19), (TURN_RIGHT, 7), (FORWARD, 9), (TURN_RIGHT, 7), (FORWARD, 17)]
        way += [(TURN_LEFT, 7), (FORWARD, 9), (TURN_LEFT, 7), (FORWARD, 40)]
        assert _walk(env, way) == (30.0, True)
    finally:
        env.close()


def test_seek_avoid_pays_apples_and_charges_lemons() -> None:
    env = make_labyrinth_env("pathevo/Labyrinth-SeekAvoid-v0", seed=0)
    try:
        assert _walk(env, [(FORWARD, 12)]) == (-1.0, False)  # a lemon four cells east
        assert _walk(env, [(TURN_LEFT, 14), (FORWARD, 12)]) == (1.0, False)  # an apple west
    finally:
        env.close()


def test_time_limit_truncates() -> None:
    env = make_labyrinth_env("pathevo/Labyrinth-NavMaze-v0", seed=0, max_episode_steps=5)
    try:
        env.reset(seed=0)
        steps = [env.step(TURN_LEFT) for _ in range(5)]
    finally:
        env.close()
    assert [s[3] for s in steps] == [False] * 4 + [True]
    assert steps[-1][0].std() > 0  # a real last frame, not ViZDoom's blank terminal one


@pytest.mark.parametrize("level", ["stairway_to_melon", "nav_maze", "seekavoid_arena"])
def test_shipped_wad_matches_its_generator(level: str, tmp_path: Path) -> None:
    pytest.importorskip("omg")
    from pathevo.envs.labyrinth.textmap import build_wad

    scenarios = Path(__file__).parents[2] / "envs" / "labyrinth" / "scenarios"
    path = scenarios / f"build_{level}.py"
    spec = importlib.util.spec_from_file_location(f"build_{level}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build_wad(module.LEVEL, tmp_path / "out.wad")
    assert (tmp_path / "out.wad").read_bytes() == (scenarios / f"{level}.wad").read_bytes()
