"""Environment batches: episode bookkeeping, the Python loop, ale-py's vector env, MinAtar."""

import functools

import numpy as np
import pytest
import torch

from pathevo.agents import env_batch
from pathevo.agents.env_batch import (
    AtariVectorBatch,
    EnvBatch,
    EpisodeTracker,
    MinAtarBatch,
    make_env_batch,
)
from pathevo.envs import make_env


def test_episode_tracker_reports_and_restarts_ended_episodes():
    tracker = EpisodeTracker(3)
    assert tracker.update(np.array([1.0, 2.0, 0.5]), np.array([False, True, False])) == [
        (1, 2.0, 1)
    ]
    finished = tracker.update(np.array([1.0, 1.0, 1.0]), np.array([True, True, False]))
    assert finished == [(0, 2.0, 2), (1, 1.0, 1)]
    assert tracker.returns.tolist() == [0.0, 0.0, 1.5] and tracker.lengths.tolist() == [0, 0, 2]


def test_env_batch_restarts_cartpole_episodes():
    envs = EnvBatch("CartPole-v1", [0, 1])
    assert envs.obs.shape == (2, 4) and envs.starts.all()
    lengths = []
    for _ in range(100):
        step = envs.step(np.zeros(2, dtype=np.int64))  # always push left
        assert torch.equal(step.dones, envs.starts) and not step.truncated.any()
        lengths += [length for _, _, length in step.finished]
    assert lengths and all(8 <= length <= 20 for length in lengths)  # pushing one way falls fast
    envs.close()


def run_pong(seeds: list[int], steps: int) -> list[torch.Tensor]:
    envs = AtariVectorBatch("ALE/Pong-v5", seeds)
    frames = [envs.obs.clone()]
    actions = np.random.default_rng(0).integers(0, 6, (steps, len(seeds)))
    for t in range(steps):
        envs.step(actions[t])
        frames.append(envs.obs.clone())
    envs.close()
    return frames


def test_atari_vector_batch_frames_and_seeding():
    frames = run_pong([3, 4], 60)
    assert frames[0].shape == (2, 4, 84, 84) and frames[0].dtype == torch.uint8
    assert not frames[-1].equal(frames[0])
    # the stack shifts by one frame per step
    assert torch.equal(frames[-1][:, :3], frames[-2][:, 1:])
    again = run_pong([3, 4], 60)
    assert all(torch.equal(a, b) for a, b in zip(frames, again, strict=True))
    other = run_pong([5, 6], 60)
    assert not all(torch.equal(a, b) for a, b in zip(frames, other, strict=True))


def test_atari_vector_batch_restarts_a_finished_game():
    envs = AtariVectorBatch("ALE/Pong-v5", [0])
    rng = np.random.default_rng(0)
    for _ in range(5000):
        step = envs.step(rng.integers(0, 6, 1))
        if step.finished:
            break
    assert step.finished, "a random Pong game ends within 5000 steps"
    [(index, episode_return, length)] = step.finished
    assert index == 0 and -21 <= episode_return <= -15 and length > 500
    assert step.dones[0] and envs.starts[0] and not step.truncated[0]
    assert not envs.obs[0, 0].any()  # the new episode's stack is zero-padded
    envs.close()


def test_make_env_batch_takes_the_vector_env_for_ale_ids():
    atari = make_env_batch("ALE/Breakout-v5", [0])
    assert isinstance(atari, AtariVectorBatch) and len(atari) == 1
    atari.close()
    minatar = make_env_batch("MinAtar/Breakout-v1", [0, 1])
    assert isinstance(minatar, MinAtarBatch) and minatar.obs.shape == (2, 4, 10, 10)
    minatar.close()
    other = make_env_batch("CartPole-v1", [0])
    assert isinstance(other, EnvBatch) and other.obs.shape == (1, 4)
    other.close()


def record_steps(batch, actions: int, steps: int) -> list:
    """Observations and every field of ``steps`` random steps (a truncated row's final
    observation only: the others are not part of the contract)."""
    rng = np.random.default_rng(0)
    record = [batch.obs.clone()]
    for _ in range(steps):
        step = batch.step(rng.integers(0, actions, len(batch)))
        finals = None if step.final_obs is None else step.final_obs[step.truncated]
        record.append((batch.obs.clone(), step.rewards, step.dones, step.truncated, finals,
                       step.finished))  # fmt: skip
    batch.close()
    return record


def same_record(a: list, b: list) -> bool:
    if not torch.equal(a[0], b[0]) or len(a) != len(b):
        return False
    for ours, theirs in zip(a[1:], b[1:], strict=True):
        for x, y in zip(ours, theirs, strict=True):
            if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
                if not torch.equal(x, y):
                    return False
            elif x != y:
                return False
    return True


@pytest.mark.parametrize(("game", "actions"), [("Breakout", 3), ("Asterix", 5), ("Seaquest", 6)])
@pytest.mark.parametrize("time_limit", [None, 25])
def test_minatar_batch_gives_the_steps_of_the_python_loop(monkeypatch, game, actions, time_limit):
    if time_limit is not None:  # both batches build their envs with make_env: a shorter limit
        monkeypatch.setattr(
            env_batch, "make_env", functools.partial(make_env, max_episode_steps=time_limit)
        )
    env_id, seeds = f"MinAtar/{game}-v1", [1, 2, 3]
    fast = record_steps(MinAtarBatch(env_id, seeds), actions, 300)
    reference = record_steps(EnvBatch(env_id, seeds), actions, 300)
    assert same_record(fast, reference)
    assert sum(len(step[5]) for step in fast[1:]) > 3  # episodes ended and restarted
    if time_limit is not None:
        assert sum(int(step[3].sum()) for step in fast[1:]) > 0  # and some were cut


def test_a_time_limit_is_reported_as_truncation_with_the_last_observation():
    envs = EnvBatch("MountainCar-v0", [0, 1])  # random play never reaches the flag in 200 steps
    for t in range(200):
        before = envs.obs.clone()
        step = envs.step(np.array([t % 3, 2]))
        if t < 199:
            assert not step.dones.any() and step.final_obs is None
    assert step.dones.all() and step.truncated.all() and envs.starts.all()
    assert step.final_obs.shape == (2, 2) and not torch.equal(step.final_obs, envs.obs)
    assert (step.final_obs - before).abs().max() < 0.1  # one step on from the last observation
    envs.close()


def test_atari_vector_batch_hands_over_the_last_frames_of_a_cut_game():
    envs = AtariVectorBatch("ALE/Pong-v5", [0, 1], max_episode_frames=200)  # 50 steps
    for _ in range(50):
        before = envs.obs.clone()
        step = envs.step(np.array([0, 1]))
    assert step.truncated.all() and step.dones.all()
    assert torch.equal(step.final_obs[:, :3], before[:, 1:])  # the cut game's stack, one on
    assert not envs.obs[:, 0].any()  # while the new game's stack starts zero-padded
    envs.close()
