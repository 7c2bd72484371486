"""Environment batches: episode bookkeeping, the Python loop and ale-py's vector env."""

import numpy as np
import torch

from agents.env_batch import AtariVectorBatch, EnvBatch, EpisodeTracker, make_env_batch


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
        rewards, dones, finished = envs.step(np.zeros(2, dtype=np.int64))  # always push left
        assert torch.equal(dones, envs.starts)
        lengths += [length for _, _, length in finished]
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
        rewards, dones, finished = envs.step(rng.integers(0, 6, 1))
        if finished:
            break
    assert finished, "a random Pong game ends within 5000 steps"
    [(index, episode_return, length)] = finished
    assert index == 0 and -21 <= episode_return <= -15 and length > 500
    assert dones[0] and envs.starts[0]
    assert not envs.obs[0, 0].any()  # the new episode's stack is zero-padded
    envs.close()


def test_make_env_batch_takes_the_vector_env_for_ale_ids():
    atari = make_env_batch("ALE/Breakout-v5", [0])
    assert isinstance(atari, AtariVectorBatch) and len(atari) == 1
    atari.close()
    other = make_env_batch("MinAtar/Breakout-v1", [0, 1])
    assert isinstance(other, EnvBatch) and other.obs.shape == (2, 4, 10, 10)
    other.close()
