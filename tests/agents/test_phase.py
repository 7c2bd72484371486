"""runners/phase.py: checkpoints by steps or by wall time, whichever comes first; phase state
round trips."""

import time

import pytest
import torch
from rich.console import Console
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.phase import (
    PhaseLog,
    make_progress,
    new_population,
    phase_state,
    restore_phase,
    run_phase,
)
from pathevo.agents.processes import worker_process
from pathevo.agents.shared_optim import make_shared_optimizer


def slow_worker(rank: int, steps: torch.Tensor, queue, updates: int) -> None:
    """Stands for a slow environment: one step and one update report every 50 ms."""
    with worker_process(rank, queue):
        for _ in range(updates):
            time.sleep(0.05)
            steps[rank] += 1
            queue.put({"kind": "update", "rank": rank, "step": int(steps.sum())})


def checkpoints(tmp_path, checkpoint_every: int, checkpoint_minutes: float | None) -> int:
    steps = torch.zeros(1, dtype=torch.long).share_memory_()
    saved: list[int] = []
    with SummaryWriter(str(tmp_path)) as writer, make_progress(Console(), False) as progress:
        run_phase(
            slow_worker, lambda group: [(0, steps, group.queue, 30)], steps=steps, budget=30,
            log=PhaseLog(), writer=writer, prefix="", progress=progress,
            checkpoint=lambda: saved.append(int(steps.sum())), checkpoint_every=checkpoint_every,
            checkpoint_minutes=checkpoint_minutes,
        )  # fmt: skip
    return len(saved)


@pytest.mark.parametrize(
    ("every", "minutes", "expected"),
    [
        (10, None, range(3, 4)),  # by steps only: at 10, 20 and 30
        (10**9, 0.2 / 60, range(3, 12)),  # 1.5 s of updates, a checkpoint every 0.2 s
        (10**9, None, range(0, 1)),  # neither comes due
    ],
)
def test_checkpoints_come_by_steps_or_by_minutes(tmp_path, every, minutes, expected):
    assert checkpoints(tmp_path, every, minutes) in expected


def test_a_phase_state_round_trips_into_fresh_optimiser_counters_and_population():
    cfg = PathNetA3CConfig(layers=2, modules=4, active=2)
    model = torch.nn.Linear(3, 2)
    optimizer = make_shared_optimizer("adam", model.parameters(), 1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    steps, population = torch.tensor([5, 7]), new_population(cfg, 2, seed=1)
    population.fitness.fill_(0.5)
    log = PhaseLog(episodes=[(5, 1.0)], skipped_updates=2)
    saved = phase_state(optimizer, steps, population, log)

    fresh_optimizer = make_shared_optimizer("adam", model.parameters(), 1e-3)
    fresh_steps, fresh_population = torch.zeros(2, dtype=torch.long), new_population(cfg, 2, 9)
    restored = restore_phase(saved, fresh_optimizer, fresh_steps, fresh_population)
    assert restored == log and fresh_steps.tolist() == [5, 7]
    assert torch.equal(fresh_population.genomes, population.genomes)
    assert fresh_population.fitness.tolist() == [0.5, 0.5]
    assert fresh_optimizer.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()
