"""Train an agent with asynchronous advantage actor-critic workers on one environment.

Mnih et al. 2016, arXiv:1602.01783 (A3C); with ``--agent pathnet``, PathNet-A3C (Fernando et al.
2017, arXiv:1701.08734): every worker evolves its own path through a shared module library.
Any id ``envs.make_env`` knows works: ``ALE/Pong-v5``, ``MinAtar/Breakout-v1``, ``CartPole-v1``.

Run ``python runners/a3c.py --help`` for the options; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import nn
from torch.utils.tensorboard import SummaryWriter

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.a3c import A3CConfig, A3CNet, WorkerSpec, a3c_worker
from agents.curves import final_mean_return, learning_curve
from agents.pathnet_a3c import (
    PathNetA3C,
    PathNetA3CConfig,
    PathNetWorkerSpec,
    pathnet_library,
    pathnet_worker,
)
from agents.processes import WorkerGroup
from agents.shared_optim import make_shared_optimizer
from envs import make_env
from evolution.async_tournament import SharedPopulation
from evolution.operators import module_usage
from evolution.toolbox import make_toolbox
from runners import run_dir as rd
from runners.cli import run_cli
from runners.figures import plot_learning_curves, usage_image


@dataclass
class A3CRunConfig:
    """A3C (or PathNet-A3C) on one environment, workers in parallel processes."""

    env_id: str = "MinAtar/Breakout-v1"
    """Environment id (see `python -m envs`)."""
    agent: Literal["a3c", "pathnet"] = "a3c"
    """Plain A3C with the standard network, or PathNet-A3C (evolved paths in a module library)."""
    workers: int = 2
    """Worker processes (each steps `a3c.envs-per-worker` environments)."""
    steps: int = 500_000
    """Budget: environment steps summed over all workers (one step is one action)."""
    seed: int = 0
    """Seed of everything; worker r uses seed + r."""
    target_return: float | None = None
    """Stop early once the mean return of the last 20 episodes reaches this."""
    a3c: A3CConfig = field(default_factory=A3CConfig)
    pathnet: PathNetA3CConfig = field(default_factory=PathNetA3CConfig)
    run_dir: str | None = None
    """Where to write the run (default: runs/a3c-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory from its last checkpoint (other flags are ignored)."""
    checkpoint_every: int = 100_000
    """Environment steps between checkpoints."""
    progress: bool = True
    """Show a progress display."""

    def __post_init__(self) -> None:
        if self.workers <= 0 or self.steps <= 0 or self.checkpoint_every <= 0:
            raise ValueError("workers, steps and checkpoint_every must be positive")
        if self.agent == "pathnet" and self.workers < 2:
            raise ValueError("PathNet-A3C needs at least 2 workers (one genome each)")


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


def env_spaces(env_id: str, seed: int) -> tuple[tuple[int, ...], int]:
    """Observation shape and number of actions; a one-line error for bad ids or spaces."""
    env = make_env(env_id, seed)
    try:
        if not hasattr(env.action_space, "n"):
            raise ValueError(f"{env_id} has a non-discrete action space; A3C here needs Discrete")
        return tuple(env.observation_space.shape), int(env.action_space.n)
    finally:
        env.close()


def new_population(cfg: PathNetA3CConfig, workers: int, seed: int) -> SharedPopulation:
    """One random path genome per worker, in shared memory."""
    toolbox = make_toolbox(cfg.evo_config(workers), rng=random.Random(seed))
    return SharedPopulation.create(toolbox.population(n=workers))


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
    target_return: float | None = None,
    population: SharedPopulation | None = None,
    frozen: torch.Tensor | None = None,
) -> None:
    """Run workers until the budget is spent; log their messages; checkpoint now and then.

    ``population`` (PathNet) adds fitness scalars and the module-usage image after tournaments;
    ``frozen`` ([L, M] bool) marks frozen modules in that image.
    """
    start_steps, start = int(steps.sum()), time.monotonic()
    next_checkpoint = (start_steps // checkpoint_every + 1) * checkpoint_every
    rate_mark = (start, start_steps)
    steady_from: tuple[float, int] | None = None  # (time, steps) once every worker updated
    steady_until: tuple[float, int] | None = None  # (time, steps) of the latest update since
    updated: set[int] = set()
    bar = progress.add_task(prefix.rstrip("/") or "train", total=budget, mean=float("nan"))
    progress.update(bar, completed=start_steps)
    try:
        with WorkerGroup() as group:
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
                    for key in ("policy_loss", "value_loss", "entropy", "grad_norm"):
                        writer.add_scalar(f"{prefix}losses/{key}", message[key], step)
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
                    layers, modules = frozen.shape
                    active = population.genomes.shape[1] // layers
                    usage = module_usage(population.genomes.tolist(), layers, active, modules)
                    writer.add_image(f"{prefix}evolution/paths", usage_image(usage, frozen), step)
                if int(steps.sum()) >= next_checkpoint:
                    checkpoint()
                    next_checkpoint += checkpoint_every
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


def build_agent(
    cfg: A3CRunConfig, obs_shape: tuple[int, ...], num_actions: int
) -> tuple[nn.Module, SharedPopulation | None]:
    """The shared network (and, for PathNet, the population), in shared memory."""
    if cfg.agent == "a3c":
        model: nn.Module = A3CNet(
            obs_shape, num_actions, cfg.a3c.hidden, cfg.a3c.lstm, cfg.a3c.precision
        )
        population = None
    else:
        library = pathnet_library(obs_shape, cfg.pathnet)
        model = PathNetA3C(library, obs_shape, cfg.a3c.lstm, cfg.a3c.precision)
        model.add_task(cfg.env_id, num_actions)
        population = new_population(cfg.pathnet, cfg.workers, cfg.seed)
    model.share_memory()
    return model, population


def main(cfg: A3CRunConfig) -> dict[str, Any]:
    """Train (or resume) and return the summary written to summary.json."""
    checkpoint = None
    if cfg.resume is not None:
        run_path = Path(cfg.resume)
        cfg = dataclasses.replace(rd.load_config(run_path, A3CRunConfig), resume=cfg.resume)
        checkpoint = rd.load_checkpoint(run_path)
        if checkpoint is not None and checkpoint.get("summary") is not None:
            return checkpoint["summary"]
    obs_shape, num_actions = env_spaces(cfg.env_id, cfg.seed)  # bad ids fail before any write
    if cfg.resume is None:
        run_path = rd.prepare_run_dir(cfg.run_dir, "a3c", cfg.seed)
        rd.save_config(run_path, cfg)
    torch.manual_seed(cfg.seed)
    model, population = build_agent(cfg, obs_shape, num_actions)
    a3c = cfg.a3c
    optimizer = make_shared_optimizer(
        a3c.optimizer, model.parameters(), a3c.lr, a3c.rmsprop_alpha, a3c.rmsprop_eps
    )
    steps = torch.zeros(cfg.workers, dtype=torch.long).share_memory_()
    if population is not None:
        lrs = cfg.pathnet.learning_rates(cfg.workers, a3c.lr, cfg.seed)
    else:
        lrs = torch.full((cfg.workers,), a3c.lr, dtype=torch.float64)
    log = PhaseLog()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        optimizer.share_memory()
        steps.copy_(checkpoint["steps"])
        log = PhaseLog(**checkpoint["log"])
        if population is not None:
            population.genomes.copy_(checkpoint["population"]["genomes"])
            population.fitness.copy_(checkpoint["population"]["fitness"])

    def save(summary: dict[str, Any] | None = None) -> None:
        state = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "steps": steps.clone(), "log": dataclasses.asdict(log), "summary": summary,
            "population": population and dataclasses.asdict(population),
        }  # fmt: skip
        rd.save_checkpoint(run_path, state)

    def build_args(group: WorkerGroup) -> list[tuple[Any, ...]]:
        spec = WorkerSpec(
            cfg.env_id, cfg.seed, cfg.workers, a3c, model, optimizer, steps, cfg.steps,
            group.stop, group.queue, lrs,
        )  # fmt: skip
        if population is None:
            return [(rank, spec) for rank in range(cfg.workers)]
        pathnet = PathNetWorkerSpec(spec, population, cfg.pathnet, cfg.env_id)
        return [(rank, pathnet) for rank in range(cfg.workers)]

    writer = SummaryWriter(str(run_path))
    writer.add_text("config", f"```\n{rd.json.dumps(dataclasses.asdict(cfg), indent=2)}\n```")
    console = Console()
    frozen = torch.stack(model.library.frozen_mask()) if population is not None else None
    with make_progress(console, cfg.progress) as progress:
        run_phase(
            pathnet_worker if population is not None else a3c_worker, build_args,
            steps=steps, budget=cfg.steps, log=log, writer=writer, prefix="",
            progress=progress, checkpoint=save, checkpoint_every=cfg.checkpoint_every,
            target_return=cfg.target_return, population=population, frozen=frozen,
        )  # fmt: skip

    summary = summarise(cfg, steps, log, population)
    rd.write_json(run_path / rd.SUMMARY, summary)
    plot_learning_curves(
        run_path / "learning_curve.png",
        {cfg.agent: summary["curve"]},
        f"{cfg.agent} on {cfg.env_id}, {cfg.workers} workers",
        cfg.target_return,
    )
    writer.close()
    save(summary)
    print_table(console, summary, run_path)
    return summary


def summarise(
    cfg: A3CRunConfig, steps: torch.Tensor, log: PhaseLog, population: SharedPopulation | None
) -> dict[str, Any]:
    """The summary.json content."""
    summary = {
        "env_id": cfg.env_id,
        "agent": cfg.agent,
        "workers": cfg.workers,
        "steps": int(steps.sum()),
        "episodes": len(log.episodes),
        "seconds": log.seconds,
        "steps_per_second": log.session_steps / max(log.session_seconds, 1e-9),
        "final_mean_return": final_mean_return(log.episodes),
        "solved": cfg.target_return is not None
        and final_mean_return(log.episodes) >= cfg.target_return,
        "curve": learning_curve(log.episodes),
    }
    if population is not None:
        best = population.best()
        summary["best_path"] = population.genomes[best].tolist()
        summary["best_fitness"] = float(population.fitness[best])
    return summary


def print_table(console: Console, summary: dict[str, Any], run_path: Path) -> None:
    table = Table(title=f"{summary['agent']} on {summary['env_id']}")
    for column in ("steps", "episodes", "steps/s", "final mean return (20 ep.)", "wall time"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{summary['steps']:,}",
        str(summary["episodes"]),
        f"{summary['steps_per_second']:.0f}",
        f"{summary['final_mean_return']:.2f}",
        f"{summary['seconds']:.0f} s",
    )
    console.print(table)
    console.print(f"Run: {run_path}")


if __name__ == "__main__":
    run_cli(main, A3CRunConfig, description=__doc__.split("\n\n")[0])
