"""runners/phase.py: checkpoints by steps or by wall time, whichever comes first."""

import time

import pytest
import torch
from rich.console import Console
from torch.utils.tensorboard import SummaryWriter

from agents.processes import worker_process
from runners.phase import PhaseLog, make_progress, run_phase


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
