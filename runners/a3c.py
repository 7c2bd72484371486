"""Train an agent with asynchronous advantage actor-critic workers on one environment.

Mnih et al. 2016, arXiv:1602.01783 (A3C); with ``--agent pathnet``, PathNet-A3C (Fernando et al.
2017, arXiv:1701.08734): every worker evolves its own path through a shared module library.
Any id ``pathevo.envs.make_env`` knows works: ``ALE/Pong-v5``, ``MinAtar/Breakout-v1``,
``CartPole-v1``.

Run ``pathevo a3c --help`` for the options; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
import tyro
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.curves import final_mean_return, learning_curve
from pathevo.agents.hyper_agents import HyperConfig
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.phase import (
    WORKER_BACKENDS,
    Phase,
    check_mode,
    check_worker_backend,
    env_spaces,
)
from pathevo.agents.phase_log import POPULATION_KEYS, PhaseLog, moe_load_cv2
from pathevo.agents.phase_reporters import make_progress
from pathevo.agents.registry import agent_names, get_agent
from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import agent_help, choice_of, flags_given, run_cli
from pathevo.runners.plumbing.plots import plot_learning_curves

AgentName = Annotated[
    choice_of(agent_names(trainer="a3c")),
    tyro.conf.arg(help=agent_help(agent_names(trainer="a3c"))),
]
WorkerBackend = choice_of(list(WORKER_BACKENDS))


@dataclass
class A3CRunConfig:
    """A3C (or PathNet-A3C) on one environment, workers in parallel processes or Ray actors."""

    env_id: str = "MinAtar/Breakout-v1"
    """Environment id (see `python -m pathevo.envs`)."""
    agent: AgentName = "a3c"
    """Agent from the registry (help: :func:`agent_help`, with the agents' own defaults). Built
    in Python the config holds the runner's defaults; :func:`with_agent_defaults` adds the
    agent's."""
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
    moe: MoEConfig = field(default_factory=MoEConfig)
    hyper: HyperConfig = field(default_factory=HyperConfig)
    run_dir: str | None = None
    """Where to write the run (default: runs/a3c-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory from its last checkpoint (other flags are ignored,
    but a3c.mode and a3c.device other than their defaults switch how it runs: a checkpoint is
    the same in both modes)."""
    backend: WorkerBackend = "processes"
    """Where the workers run: local processes sharing memory (Hogwild), or Ray actors that push
    gradients to a parameter-server actor (a local instance or a cluster; docs/ray.md)."""
    ray_address: str | None = None
    """The Ray cluster of the 'ray' backend: host:port of its head, ray://host:port, or auto
    (the one started on this machine with `ray start`); default: a new local instance."""
    checkpoint_every: int = 100_000
    """Environment steps between checkpoints."""
    checkpoint_minutes: float = 5.0
    """Minutes of training between checkpoints (whichever of this and checkpoint-every comes
    first)."""
    progress: bool = True
    """Show a progress display."""

    def __post_init__(self) -> None:
        if min(self.workers, self.steps, self.checkpoint_every, self.checkpoint_minutes) <= 0:
            raise ValueError(
                "workers, steps, checkpoint_every and checkpoint_minutes must be positive"
            )
        get_agent(self.agent, trainer="a3c").check_workers(self.workers)
        check_worker_backend(self.backend, self.ray_address)  # Ray: installed, address answers
        check_mode(self.a3c, self.backend)


def with_agent_defaults(cfg: A3CRunConfig, args: Sequence[str]) -> A3CRunConfig:
    """``cfg``, parsed from the command line ``args``, with its agent's own defaults
    (:attr:`pathevo.agents.registry.Agent.defaults`) in every field ``args`` do not set."""
    return get_agent(cfg.agent, trainer="a3c").configure(cfg, flags_given(args))


def build_agent(
    cfg: A3CRunConfig, obs_shape: tuple[int, ...], num_actions: int
) -> tuple[nn.Module, SharedPopulation | None]:
    """The network (and, for path agents, the population in shared memory); the phase puts
    the network in shared memory (:meth:`pathevo.agents.phase.Phase.create`)."""
    agent = get_agent(cfg.agent)
    model = agent.build_for_task(cfg, obs_shape, num_actions, cfg.env_id)
    return model, agent.population(cfg.pathnet, cfg.workers, cfg.seed)


NEEDS = {"model": dict, "optimizer": dict, "steps": torch.Tensor, "log": dict}
"""What an a3c checkpoint holds (and the types of those values) to resume from."""


def upgrade_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint in the phase layout every recipe shares (the network, then
    :meth:`pathevo.agents.phase.Phase.state`, then the summary). Run directories written before
    kept the population under ``population`` (``{"genomes", "fitness", "adoptions"}``, or
    None): its tensors move up beside the optimiser and counters, so those runs resume as they
    were."""
    if "population" not in state:
        return state
    upgraded = {key: value for key, value in state.items() if key != "population"}
    population = state["population"] or {}
    upgraded.update({key: population[key] for key in POPULATION_KEYS if key in population})
    return upgraded


def switch_mode(saved: A3CConfig, given: A3CConfig) -> A3CConfig:
    """A resumed run's A3C settings: the ``saved`` ones, in the mode and on the device
    ``given`` names if it names other than the defaults (Hogwild on the CPU)."""
    default = A3CConfig()
    if (given.mode, given.device) == (default.mode, default.device):
        return saved
    return dataclasses.replace(saved, mode=given.mode, device=given.device)


def main(cfg: A3CRunConfig) -> dict[str, Any]:
    """Train (or resume) and return the summary written to summary.json."""
    checkpoint = None
    if cfg.resume is not None:
        run_path = Path(cfg.resume)
        saved = rd.load_config(run_path, A3CRunConfig)
        cfg = dataclasses.replace(saved, resume=cfg.resume, a3c=switch_mode(saved.a3c, cfg.a3c))
        checkpoint = rd.load_checkpoint(run_path, "a3c", NEEDS)  # refused: nothing has run
        if checkpoint is not None:
            checkpoint = upgrade_checkpoint(checkpoint)
            if checkpoint.get("summary") is not None:
                return checkpoint["summary"]
    obs_shape, num_actions = env_spaces(cfg.env_id, cfg.seed)  # bad ids fail before any write
    if cfg.resume is None:
        run_path = rd.prepare_run_dir(cfg.run_dir, "a3c", cfg.seed)
        rd.save_config(run_path, cfg)
    torch.manual_seed(cfg.seed)
    model, population = build_agent(cfg, obs_shape, num_actions)
    phase = Phase.create(
        model, cfg.a3c, cfg.workers, cfg.seed, population=population, pathnet=cfg.pathnet
    )
    if checkpoint is not None:  # each entry tried on its own, so an error names its key
        population_keys = [k for k in POPULATION_KEYS if k in checkpoint and population is not None]
        loads = {
            "model": lambda: model.load_state_dict(checkpoint["model"]),
            "optimizer": lambda: phase.optimizer.load_state_dict(checkpoint["optimizer"]),
            "steps": lambda: phase.steps.copy_(checkpoint["steps"]),
            "log": lambda: PhaseLog(**checkpoint["log"]),
            **{k: (lambda k=k: getattr(population, k).copy_(checkpoint[k]))
               for k in population_keys},
        }  # fmt: skip
        for key, load in loads.items():
            try:
                load()
            except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as error:
                raise rd.malformed(run_path, key, error) from None
        phase.restore(checkpoint)  # every entry fits: all of it at once

    def save(summary: dict[str, Any] | None = None) -> None:
        rd.save_checkpoint(run_path, {"model": model.state_dict(), **phase.state(),
                                      "summary": summary})  # fmt: skip

    # Resumed: events a killed run wrote after its last checkpoint are purged, so the curves
    # continue from the checkpoint without duplicated steps.
    start = int(phase.steps.sum())
    writer = SummaryWriter(str(run_path), purge_step=start if checkpoint else None)
    writer.add_text("config", f"```\n{rd.json.dumps(dataclasses.asdict(cfg), indent=2)}\n```")
    console = Console()
    with make_progress(console, cfg.progress) as progress:
        reporters = phase.reporters(
            writer=writer, name="train", progress=progress, checkpoint=save,
            checkpoint_every=cfg.checkpoint_every, checkpoint_minutes=cfg.checkpoint_minutes,
            target_return=cfg.target_return,
        )  # fmt: skip
        phase.run(
            get_agent(cfg.agent).worker, env_id=cfg.env_id, budget=cfg.steps,
            reporters=reporters, backend=cfg.backend, ray_address=cfg.ray_address,
            workdir=run_path / "workers",
        )  # fmt: skip

    summary = summarise(cfg, phase)
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


def summarise(cfg: A3CRunConfig, phase: Phase) -> dict[str, Any]:
    """The summary.json content."""
    steps, log, population = phase.steps, phase.log, phase.population
    summary = {
        "env_id": cfg.env_id,
        "agent": cfg.agent,
        "workers": cfg.workers,
        "steps": int(steps.sum()),
        "episodes": len(log.episodes),
        "seconds": log.seconds,
        "steps_per_second": log.session_steps / max(log.session_seconds, 1e-9),
        "final_mean_return": final_mean_return(log.episodes),
        "skipped_updates": log.skipped_updates,
        "worker_restarts": log.worker_restarts,
        "solved": cfg.target_return is not None
        and final_mean_return(log.episodes) >= cfg.target_return,
        "curve": learning_curve(log.episodes),
    }
    if log.moe:
        summary["moe_load_cv2"] = moe_load_cv2(log)
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


def cli_main(cfg: A3CRunConfig) -> dict[str, Any]:
    """:func:`main` from the command line: the agent's own defaults where no flag was given."""
    return main(with_agent_defaults(cfg, sys.argv[1:]))


if __name__ == "__main__":
    run_cli(cli_main, A3CRunConfig, description=__doc__.split("\n\n")[0])
