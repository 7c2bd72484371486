"""What an A3C training phase records of itself, and the checkpoint of its shared state.

The phase driver (:func:`pathevo.agents.phase.run_phase`) keeps a :class:`PhaseLog` in the runner's
process — episodes, restarts, skipped updates, the workers' latest MoE routing reports — and its
reporters (:mod:`pathevo.agents.phase_reporters`) add the wall time and steady-state throughput.
:func:`phase_state` / :func:`restore_phase` are the one checkpoint layout of a phase's shared
state besides its network (optimiser, step counters, log and, for path agents, the population),
used by every RL recipe through :class:`pathevo.agents.phase.Phase`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.modules.moe import Routing


@dataclass
class PhaseLog:
    """What the runner's process records of one training phase (checkpointed)."""

    episodes: list[tuple[int, float]] = field(default_factory=list)
    """(global step at the episode's end, return), in arrival order."""
    seconds: float = 0.0
    """Wall time spent training (over all sessions of a resumed run)."""
    session_steps: int = 0
    """Environment steps of the latest session from every worker's first logged update to the
    last logged update (steady state)."""
    session_seconds: float = 0.0
    """Wall time of the same stretch: process start-up and shut-down are not part of the
    throughput."""
    worker_restarts: int = 0
    """Workers that failed (an exception, or killed) and were started again."""
    skipped_updates: int = 0
    """Updates the workers skipped because their loss or gradient was NaN or infinite."""
    moe: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Per MoE layer and task (``<layer>/<task>``), per worker rank: its latest routing report
    (picks, importance and allowed experts over its last ``log_every`` updates)."""


POPULATION_KEYS = ("genomes", "fitness", "adoptions")
"""The population's tensors in a phase checkpoint (``adoptions`` since the a3c recipe moved to
this layout; checkpoints without it restore the other two)."""


def phase_state(
    optimizer: torch.optim.Optimizer, steps: torch.Tensor, population: SharedPopulation | None,
    log: PhaseLog,
) -> dict[str, Any]:  # fmt: skip
    """A phase's checkpoint besides its model: optimiser, step counters, log and (path agents)
    the population."""
    state = {"optimizer": optimizer.state_dict(), "steps": steps.clone(),
             "log": dataclasses.asdict(log)}  # fmt: skip
    if population is not None:
        state.update({key: getattr(population, key).clone() for key in POPULATION_KEYS})
    return state


def restore_phase(
    state: dict[str, Any], optimizer: torch.optim.Optimizer, steps: torch.Tensor,
    population: SharedPopulation | None,
) -> PhaseLog:  # fmt: skip
    """Load :func:`phase_state` ``state`` into the (shared) optimiser, counters and population;
    the phase's log."""
    optimizer.load_state_dict(state["optimizer"])
    optimizer.share_memory()
    steps.copy_(state["steps"])
    if population is not None:
        for key in POPULATION_KEYS:
            if key in state:
                getattr(population, key).copy_(state[key])
    return PhaseLog(**state["log"])


def record_routing(log: PhaseLog, rank: int, reports: dict[str, dict[str, Any]]) -> None:
    """Keep worker ``rank``'s latest routing report of every MoE layer and task in ``log``."""
    for name, report in reports.items():
        log.moe.setdefault(name, {})[str(rank)] = report


def routing_total(reports: dict[str, dict[str, Any]]) -> Routing:
    """The workers' latest routing reports of one MoE layer and task, summed."""
    picks = torch.stack([torch.tensor(r["picks"]) for r in reports.values()]).sum(0)
    importance = torch.stack([torch.tensor(r["importance"]) for r in reports.values()]).sum(0)
    allowed = torch.stack([torch.tensor(r["allowed"]) for r in reports.values()]).any(0)
    tokens = sum(int(r["tokens"]) for r in reports.values())
    return Routing(picks, importance, allowed, tokens)


def moe_load_cv2(log: PhaseLog) -> dict[str, float]:
    """Per MoE layer and task: CV² of the experts' picks (over the experts the paths offered)
    in the workers' latest reports: 0 is perfectly balanced routing."""
    return {name: routing_total(reports).load_cv2() for name, reports in log.moe.items()}
