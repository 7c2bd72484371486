"""The A3C training phase every RL runner uses: workers, their log, progress and checkpoints.

A phase starts one process per worker (:class:`agents.processes.WorkerGroup`), reads their
messages — episodes, updates, tournaments — into a :class:`PhaseLog` and TensorBoard
(``charts/…``, ``losses/…``, ``evolution/…`` against global environment steps), shows progress,
checkpoints every ``checkpoint_every`` steps or ``checkpoint_minutes`` (and on Ctrl-C), and
stops early once a target
return is reached. Runners (``a3c``, ``atari_transfer``, ``transfer_matrix``, …) build the
shared model, optimiser and worker arguments and hand them to :func:`run_phase`.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.curves import final_mean_return
from pathevo.agents.images import routing_image, usage_image
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.processes import WorkerGroup
from pathevo.agents.ray_workers import RayWorkerGroup
from pathevo.envs import make_env
from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.evolution.backends import check_backend
from pathevo.evolution.operators import module_usage
from pathevo.evolution.toolbox import make_toolbox
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


def phase_state(
    optimizer: torch.optim.Optimizer, steps: torch.Tensor, population: SharedPopulation | None,
    log: PhaseLog,
) -> dict[str, Any]:  # fmt: skip
    """A phase's checkpoint besides its model: optimiser, step counters, log and (path agents)
    the population."""
    state = {"optimizer": optimizer.state_dict(), "steps": steps.clone(),
             "log": dataclasses.asdict(log)}  # fmt: skip
    if population is not None:
        state.update(genomes=population.genomes.clone(), fitness=population.fitness.clone())
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
        population.genomes.copy_(state["genomes"])
        population.fitness.copy_(state["fitness"])
    return PhaseLog(**state["log"])


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


def log_routing(
    writer: SummaryWriter,
    prefix: str,
    log: PhaseLog,
    rank: int,
    step: int,
    reports: dict[str, dict[str, Any]],
) -> None:
    """TensorBoard for one worker's routing report: per-expert load and importance (shares of
    all workers' latest reports), load CV², and an image of expert usage per task."""
    for name, report in reports.items():
        log.moe.setdefault(name, {})[str(rank)] = report
        total = routing_total(log.moe[name])
        tag = f"{prefix}moe/{name}"
        writer.add_scalar(f"{tag}/load_cv2", total.load_cv2(), step)
        picks = total.picks / max(float(total.picks.sum()), 1.0)
        importance = total.importance / max(float(total.importance.sum()), 1e-9)
        for expert in torch.nonzero(total.allowed).flatten().tolist():
            writer.add_scalar(f"{tag}/load/expert{expert}", picks[expert], step)
            writer.add_scalar(f"{tag}/importance/expert{expert}", importance[expert], step)
        if rank == 0:  # one image per round of reports
            writer.add_image(f"{tag}/usage", routing_image(total.picks, total.allowed), step)


def env_spaces(env_id: str, seed: int) -> tuple[tuple[int, ...], int]:
    """Observation shape and number of actions; a one-line error for bad ids or spaces."""
    env = make_env(env_id, seed)
    try:
        if not hasattr(env.action_space, "n"):
            raise ValueError(f"{env_id} has a non-discrete action space; A3C here needs Discrete")
        return tuple(env.observation_space.shape), int(env.action_space.n)
    finally:
        env.close()


def new_population(
    cfg: PathNetA3CConfig, workers: int, seed: int, sizes: Sequence[int] | None = None
) -> SharedPopulation:
    """One random path genome per worker, in shared memory (``sizes``: per-layer M of a grown
    library; ``cfg.modules`` in every layer by default)."""
    toolbox = make_toolbox(cfg.evo_config(workers), rng=random.Random(seed), sizes=sizes)
    return SharedPopulation.create(toolbox.population(n=workers))


WORKER_BACKENDS = ("processes", "ray")
"""Where A3C workers run: local processes sharing memory, or Ray actors (docs/ray.md)."""


def check_worker_backend(kind: str, ray_address: str | None = None) -> None:
    """Before any work: ``kind`` is a worker backend and its prerequisites hold; a one-line
    ValueError (with close names, or how to install Ray) otherwise."""
    check_backend(kind, ray_address, WORKER_BACKENDS)


def worker_group(
    backend: str,
    ray_address: str | None,
    workers: int,
    max_restarts: int,
    on_restart: Callable[[int, str, int], None],
) -> WorkerGroup | RayWorkerGroup:
    """The group that runs a phase's workers on ``backend``."""
    check_worker_backend(backend, ray_address)
    if backend == "ray":
        return RayWorkerGroup(workers, ray_address, max_restarts=max_restarts,
                              on_restart=on_restart)  # fmt: skip
    return WorkerGroup(max_restarts=max_restarts, on_restart=on_restart)


def make_progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f} steps"),
        TextColumn("mean return {task.fields[mean]:.2f}"), TimeElapsedColumn(),
        console=console, disable=not enabled,
    )  # fmt: skip


def run_phase(
    target: Callable[..., None],
    build_args: Callable[[WorkerGroup], list[tuple[Any, ...]]],
    *,
    steps: torch.Tensor,
    budget: int,
    log: PhaseLog,
    writer: SummaryWriter,
    prefix: str,
    progress: Progress,
    checkpoint: Callable[[], None],
    checkpoint_every: int,
    checkpoint_minutes: float | None = None,
    max_restarts: int = 3,
    target_return: float | None = None,
    population: SharedPopulation | None = None,
    frozen: Sequence[torch.Tensor] | None = None,
    backend: str = "processes",
    ray_address: str | None = None,
) -> None:
    """Run workers until the budget is spent; log their messages; checkpoint now and then:
    every ``checkpoint_every`` steps or ``checkpoint_minutes`` of wall time, whichever comes
    first (a slow environment loses at most that much work to a killed run).

    A worker that fails (raises, or is killed) is restarted with the same arguments — its
    population slot, so its genome, and a fresh environment — up to ``max_restarts`` times;
    each restart is reported on stderr and as TensorBoard text (``events/worker_restarts``).
    ``population`` (PathNet) adds fitness scalars and the module-usage image after tournaments;
    ``frozen`` (per layer a bool [M_l], as ``library.frozen_mask()``) marks frozen modules in
    that image. ``backend``: ``processes`` (local processes sharing memory) or ``ray`` (Ray
    actors around a parameter server, :mod:`agents.ray_workers`, on a local instance or the
    cluster at ``ray_address``); the runner's model, optimiser, counters and population are
    up to date whenever ``checkpoint`` runs and when the phase ends, with either.
    """
    start_steps, start = int(steps.sum()), time.monotonic()
    next_checkpoint = (start_steps // checkpoint_every + 1) * checkpoint_every
    interval = None if checkpoint_minutes is None else 60.0 * checkpoint_minutes
    last_checkpoint = start
    rate_mark = (start, start_steps)
    steady_from: tuple[float, int] | None = None  # (time, steps) once every worker updated
    steady_until: tuple[float, int] | None = None  # (time, steps) of the latest update since
    updated: set[int] = set()
    bar = progress.add_task(prefix.rstrip("/") or "train", total=budget, mean=float("nan"))
    progress.update(bar, completed=start_steps)

    def report_restart(rank: int, reason: str, restarts: int) -> None:
        log.worker_restarts += 1
        event = f"worker {rank} failed and was restarted ({restarts} of {max_restarts}): {reason}"
        print(f"{prefix}{event}", file=sys.stderr)
        writer.add_text(f"{prefix}events/worker_restarts", event, int(steps.sum()))

    try:
        with worker_group(backend, ray_address, steps.numel(), max_restarts,
                          report_restart) as group:  # fmt: skip
            args = build_args(group)
            group.start(target, args)
            for message in group.messages():
                kind, rank, step = message["kind"], message["rank"], message["step"]
                if kind == "episode":
                    if group.stop.item():
                        # The target was reached: episodes finishing while the workers wind
                        # down are not part of the run (they would move the reported mean).
                        continue
                    log.episodes.append((step, message["return"]))
                    mean = final_mean_return(log.episodes)
                    writer.add_scalar(f"{prefix}charts/episodic_return/worker{rank}",
                                      message["return"], step)  # fmt: skip
                    writer.add_scalar(f"{prefix}charts/mean_return_20", mean, step)
                    progress.update(bar, completed=min(int(steps.sum()), budget), mean=mean)
                    reached = target_return is not None and mean >= target_return
                    if reached and len(log.episodes) >= 20:
                        group.stop.fill_(True)
                elif kind == "update":
                    updated.add(rank)
                    if steady_from is None and len(updated) == len(args):
                        steady_from = (time.monotonic(), int(steps.sum()))
                    elif steady_from is not None:
                        steady_until = (time.monotonic(), int(steps.sum()))
                    if "moe" in message:
                        log_routing(writer, prefix, log, rank, step, message["moe"])
                    for key in ("policy_loss", "value_loss", "entropy", "grad_norm", "aux_loss"):
                        if key in message:  # aux_loss: agents with MoE layers
                            writer.add_scalar(f"{prefix}losses/{key}", message[key], step)
                    if message.get("skipped_updates"):
                        log.skipped_updates += message["skipped_updates"]
                        writer.add_scalar(f"{prefix}losses/skipped_updates",
                                          log.skipped_updates, step)  # fmt: skip
                    now = time.monotonic()
                    if now - rate_mark[0] >= 2.0:
                        rate = (int(steps.sum()) - rate_mark[1]) / (now - rate_mark[0])
                        writer.add_scalar(f"{prefix}charts/steps_per_second", rate, step)
                        rate_mark = (now, int(steps.sum()))
                elif kind == "tournament" and population is not None and frozen is not None:
                    fitness = population.fitness[~population.fitness.isnan()]
                    writer.add_scalar(f"{prefix}evolution/fitness/worker{rank}",
                                      message["fitness"], step)  # fmt: skip
                    if fitness.numel():  # every slot may be between a copy and its evaluation
                        writer.add_scalar(f"{prefix}evolution/fitness_max", fitness.max(), step)
                        writer.add_scalar(f"{prefix}evolution/fitness_mean", fitness.mean(), step)
                    sizes = [len(row) for row in frozen]
                    active = population.genomes.shape[1] // len(sizes)
                    usage = module_usage(population.genomes.tolist(), len(sizes), active, sizes)
                    writer.add_image(f"{prefix}evolution/paths", usage_image(usage, frozen), step)
                done = int(steps.sum())
                overdue = interval is not None and time.monotonic() - last_checkpoint >= interval
                if done >= next_checkpoint or overdue:
                    group.sync()  # Ray: the server's state into the runner's objects
                    checkpoint()
                    next_checkpoint = (done // checkpoint_every + 1) * checkpoint_every
                    last_checkpoint = time.monotonic()
    except KeyboardInterrupt:
        checkpoint()
        raise
    finally:
        now = time.monotonic()
        log.seconds += now - start
        # Steady state: from every worker's first logged update to the last one (process
        # start-up and shut-down excluded); a run too short for that counts its whole session.
        if steady_from is None or steady_until is None:
            steady_from, steady_until = (start, start_steps), (now, int(steps.sum()))
        log.session_seconds = steady_until[0] - steady_from[0]
        log.session_steps = steady_until[1] - steady_from[1]
