"""The A3C training phase every RL recipe uses: its set-up, and the driver that runs it.

A3C: Mnih et al. 2016, arXiv:1602.01783; PathNet-A3C: Fernando et al. 2017, arXiv:1701.08734.
A recipe builds its network (and, for path agents, a population of path genomes), sets the
phase up once with :meth:`Phase.create` — the shared optimiser, step counters, per-worker
learning rates and log — restores it from a checkpoint with :meth:`Phase.restore` (the layout
of :func:`pathevo.agents.phase_log.phase_state`, the same in every recipe), and runs it with
:meth:`Phase.run`. :func:`run_phase` starts one worker per rank (local processes,
:class:`pathevo.agents.processes.WorkerGroup`, or Ray actors,
:class:`pathevo.agents.ray_workers.RayWorkerGroup`; in the learner mode, ``A3CConfig.mode``,
actor processes around one learner, :class:`pathevo.agents.learner.LearnerGroup`), reads their
messages — episodes, updates, tournaments — into the :class:`PhaseLog` and hands them to reporters
(:mod:`pathevo.agents.phase_reporters`: TensorBoard, progress, throughput, checkpoint timing,
early stop, restarts), as neat-python's population loop hands generations to its
``ReporterSet``: a new duty is a new reporter, not an edit here.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.a3c import A3CConfig, WorkerSpec
from pathevo.agents.curves import LatestReturns
from pathevo.agents.learner import LearnerGroup, check_learner_target
from pathevo.agents.pathnet_a3c import PathNetA3CConfig, PathNetWorkerSpec
from pathevo.agents.phase_log import PhaseLog, phase_state, record_routing, restore_phase
from pathevo.agents.phase_reporters import (
    Checkpointer,
    EarlyStop,
    ProgressReporter,
    Reporter,
    ReporterSet,
    RestartReporter,
    TensorBoardReporter,
    ThroughputReporter,
)
from pathevo.agents.processes import WorkerGroup, torch_threads
from pathevo.agents.ray_workers import RayWorkerGroup
from pathevo.agents.shared_optim import make_shared_optimizer
from pathevo.envs import make_env
from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.evolution.backends import check_backend
from pathevo.evolution.toolbox import make_toolbox


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


def check_mode(a3c: A3CConfig, backend: str) -> None:
    """A one-line ValueError where ``a3c.mode`` cannot run on the worker ``backend``: the
    learner mode's actors are local processes."""
    if a3c.mode == "learner" and backend != "processes":
        raise ValueError(f"mode learner runs local actor processes; backend {backend!r} needs "
                         "mode hogwild")  # fmt: skip


def worker_group(
    backend: str,
    ray_address: str | None,
    workers: int,
    max_restarts: int,
    on_restart: Callable[[int, str, int], None],
    workdir: str | Path | None = None,
    a3c: A3CConfig | None = None,
) -> WorkerGroup | RayWorkerGroup | LearnerGroup:
    """The group that runs a phase's workers on ``backend`` (local processes keep their
    directories in ``workdir``: :class:`~pathevo.agents.processes.WorkerGroup`), or, where
    ``a3c`` asks for the learner mode, its actors and learner
    (:class:`~pathevo.agents.learner.LearnerGroup`, on ``a3c.device``)."""
    check_worker_backend(backend, ray_address)
    if a3c is not None and a3c.mode == "learner":
        check_mode(a3c, backend)
        return LearnerGroup(a3c.device, max_restarts=max_restarts, on_restart=on_restart,
                            workdir=workdir)  # fmt: skip
    if backend == "ray":
        return RayWorkerGroup(workers, ray_address, max_restarts=max_restarts,
                              on_restart=on_restart)  # fmt: skip
    return WorkerGroup(max_restarts=max_restarts, on_restart=on_restart, workdir=workdir)


WorkerArgs = Callable[[WorkerGroup | RayWorkerGroup], list[tuple[Any, ...]]]
"""``build_args(group)``: one argument tuple per worker, made once the group (its stop flag and
queue) exists."""


def run_phase(
    target: Callable[..., None],
    build_args: WorkerArgs,
    *,
    steps: torch.Tensor,
    budget: int,
    log: PhaseLog,
    reporters: Sequence[Reporter],
    max_restarts: int = 3,
    backend: str = "processes",
    ray_address: str | None = None,
    workdir: str | Path | None = None,
    a3c: A3CConfig | None = None,
) -> None:
    """Run ``target`` workers until ``budget`` environment steps (the sum of ``steps`` [W]
    long) are done or a reporter stops them; record their messages in ``log``; hand every
    message to ``reporters``.

    A worker that fails (raises, or is killed) is restarted with the same arguments — its
    population slot, so its genome, and a fresh environment — up to ``max_restarts`` times.
    ``backend``: ``processes`` (local processes sharing memory) or ``ray`` (Ray actors around a
    parameter server, :mod:`pathevo.agents.ray_workers`, on a local instance or the cluster at
    ``ray_address``); the runner's model, optimiser, counters and population are up to date
    whenever a reporter syncs the workers and when the phase ends, with either. ``workdir``:
    where local worker processes keep their stderr logs and game engines their crash logs, one
    directory per worker (a temporary directory by default; what is empty is removed at the
    end); never the user's working directory. ``a3c`` in the learner mode: actor processes and
    one learner in this process (:mod:`pathevo.agents.learner`) instead of ``target`` workers,
    with the same messages, restarts and state.
    """
    report = ReporterSet(reporters)
    report.started(done=int(steps.sum()), budget=budget, workers=steps.numel())
    latest = LatestReturns(episodes=log.episodes)

    def on_restart(rank: int, reason: str, restarts: int) -> None:
        log.worker_restarts += 1
        report.restarted(rank=rank, reason=reason, restarts=restarts,
                         max_restarts=max_restarts, done=int(steps.sum()))  # fmt: skip

    try:
        # The workers have the cores; the runner's own tensor work is small, and a parallel op
        # would wait for a busy core (milliseconds a message).
        with torch_threads(1), worker_group(backend, ray_address, steps.numel(), max_restarts,
                                            on_restart, workdir, a3c) as group:  # fmt: skip
            group.start(target, build_args(group))
            for message in group.messages():
                kind, rank, step = message["kind"], message["rank"], message["step"]
                done = int(steps.sum())
                if kind in ("episode", "episodes"):  # one episode, or a rollout's
                    if group.stop.item():
                        # Stopped early: episodes finishing while the workers wind down are
                        # not part of the run (they would move the reported mean).
                        continue
                    returns = message["returns"] if kind == "episodes" else [message["return"]]
                    for episode_return in returns:
                        log.episodes.append((step, episode_return))
                        latest.add(step, episode_return)
                        report.episode(
                            rank=rank, step=step, episode_return=episode_return,
                            mean=latest.mean(), episodes=len(log.episodes), done=done,
                            workers=group,
                        )  # fmt: skip
                elif kind == "update":
                    if "moe" in message:
                        record_routing(log, rank, message["moe"])
                    log.skipped_updates += message.get("skipped_updates", 0)
                    report.update(rank=rank, step=step, message=message, done=done)
                elif kind == "tournament":
                    report.tournament(rank=rank, step=step, fitness=message["fitness"])
                report.handled(done=done, workers=group)
    except KeyboardInterrupt:
        report.interrupted(done=int(steps.sum()))
        raise
    finally:
        report.ended(done=int(steps.sum()))


@dataclass
class Phase:
    """One A3C training phase's shared state, set up in one place for every recipe.

    The network (in shared memory), a shared optimiser over it, the workers' step counters and
    learning rates, the phase's log and — for path agents — the population of path genomes
    (one per worker) with its PathNet settings. Its checkpoint is :meth:`state` (the network is
    the recipe's to save, with whatever else it keeps of it).
    """

    model: nn.Module
    a3c: A3CConfig
    optimizer: torch.optim.Optimizer
    steps: torch.Tensor
    """[W] long, shared: environment steps done by each worker."""
    lrs: torch.Tensor
    """[W] float64: each worker's learning rate."""
    seed: int
    """The phase's seed: worker r's first session uses seed + r."""
    population: SharedPopulation | None = None
    """Path agents: one genome per worker, in shared memory; None for agents without paths."""
    pathnet: PathNetA3CConfig | None = None
    """The population's settings (tournaments, per-worker learning rates)."""
    log: PhaseLog = field(default_factory=PhaseLog)

    @classmethod
    def create(
        cls,
        model: nn.Module,
        a3c: A3CConfig,
        workers: int,
        seed: int,
        *,
        population: SharedPopulation | None = None,
        pathnet: PathNetA3CConfig | None = None,
    ) -> Phase:
        """A fresh phase of ``workers`` over ``model`` (put in shared memory here, after any
        growth of its library). ``population`` (a path agent's, with its settings ``pathnet``)
        also chooses the learning rates: ``pathnet``'s (sampled per worker if it says so);
        ``a3c.lr`` for every worker otherwise."""
        if population is not None and pathnet is None:
            raise ValueError("a phase with a population of paths needs its PathNet settings")
        model.share_memory()
        optimizer = make_shared_optimizer(
            a3c.optimizer, model.parameters(), a3c.lr, a3c.rmsprop_alpha, a3c.rmsprop_eps
        )
        steps = torch.zeros(workers, dtype=torch.long).share_memory_()
        if population is not None:
            lrs = pathnet.learning_rates(workers, a3c.lr, seed)
        else:
            lrs = torch.full((workers,), a3c.lr, dtype=torch.float64)
        return cls(model, a3c, optimizer, steps, lrs, seed, population, pathnet)

    @property
    def workers(self) -> int:
        return self.steps.numel()

    @property
    def frozen(self) -> list[torch.Tensor] | None:
        """Path agents: per layer a bool [M_l] of the library's frozen modules (the usage
        image marks them); None without paths."""
        return None if self.population is None else self.model.library.frozen_mask()

    def state(self) -> dict[str, Any]:
        """The phase's checkpoint besides its network
        (:func:`pathevo.agents.phase_log.phase_state`)."""
        return phase_state(self.optimizer, self.steps, self.population, self.log)

    def restore(self, state: dict[str, Any]) -> None:
        """Go on from :meth:`state` ``state``: optimiser, counters, population and log (the
        log object is updated in place, so reporters made earlier see it)."""
        restored = restore_phase(state, self.optimizer, self.steps, self.population)
        vars(self.log).update(vars(restored))

    def worker_args(
        self,
        group: WorkerGroup | RayWorkerGroup,
        *,
        env_id: str,
        budget: int,
        task: str | None = None,
        evolve: bool = True,
    ) -> list[tuple[int, WorkerSpec | PathNetWorkerSpec]]:
        """``(rank, spec)`` for every worker on ``env_id`` until ``budget`` steps: the A3C spec,
        wrapped with the population for path agents (trained on head ``task``, default the env
        id; ``evolve`` False keeps every worker on its initial path)."""
        spec = WorkerSpec(
            env_id, self.seed, self.workers, self.a3c, self.model, self.optimizer, self.steps,
            budget, group.stop, group.queue, self.lrs,
        )  # fmt: skip
        if self.population is None:
            return [(rank, spec) for rank in range(self.workers)]
        paths = PathNetWorkerSpec(spec, self.population, self.pathnet, task or env_id, evolve)
        return [(rank, paths) for rank in range(self.workers)]

    def reporters(
        self,
        *,
        writer: SummaryWriter,
        name: str,
        progress: Progress,
        checkpoint: Callable[[], None] | None = None,
        checkpoint_every: int | None = None,
        checkpoint_minutes: float | None = None,
        target_return: float | None = None,
    ) -> list[Reporter]:
        """The reporters of a recipe's phase called ``name`` (its progress bar, its restarts on
        stderr): TensorBoard into ``writer`` (the phase's own directory: tags name only the
        quantity), progress, throughput and restarts; checkpoints with ``checkpoint`` (every
        ``checkpoint_every`` steps or ``checkpoint_minutes``), an early stop with
        ``target_return``. Make them after
        :meth:`restore`: the usage image marks the frozen modules the restored network has."""
        reporters: list[Reporter] = [
            TensorBoardReporter(writer, self.log, self.population, self.frozen),
            ProgressReporter(progress, name or "train"),
            ThroughputReporter(writer, self.log),
            RestartReporter(writer, name),
        ]
        if checkpoint is not None:
            reporters.append(Checkpointer(checkpoint, checkpoint_every, checkpoint_minutes))
        if target_return is not None:
            reporters.append(EarlyStop(target_return))
        return reporters

    def run(
        self,
        target: Callable[..., None],
        *,
        env_id: str,
        budget: int,
        reporters: Sequence[Reporter],
        task: str | None = None,
        evolve: bool = True,
        max_restarts: int = 3,
        backend: str = "processes",
        ray_address: str | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        """Train with ``target`` workers (the agent's worker function) on ``env_id`` until
        ``budget`` steps (:func:`run_phase`, with ``max_restarts``, ``backend``, ``ray_address``
        and ``workdir``; ``task`` and ``evolve`` as :meth:`worker_args`)."""
        if self.a3c.mode == "learner":  # refused before any worker starts
            check_mode(self.a3c, backend)
            check_learner_target(target)
        build_args = functools.partial(
            self.worker_args, env_id=env_id, budget=budget, task=task, evolve=evolve
        )
        run_phase(
            target, build_args, steps=self.steps, budget=budget, log=self.log,
            reporters=reporters, max_restarts=max_restarts, backend=backend,
            ray_address=ray_address, workdir=workdir, a3c=self.a3c,
        )  # fmt: skip
