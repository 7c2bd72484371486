"""Throughput of A3C and PathNet-A3C workers against the raw environment limit, in one run.

Mnih et al. 2016, arXiv:1602.01783 (A3C); Fernando et al. 2017, arXiv:1701.08734 (PathNet).
Three measurements on the same machine, one after the other:

* ``raw``: ale-py's C++ vector env stepping uniformly random actions with the same
  preprocessing as ``pathevo.envs.make_env`` (84×84 gray, frame skip 4 with max-pooling, 4 stacked
  frames, up to 30 no-ops, sticky actions 0.25), W·E games and as many threads as workers
  (each worker steps its own vector env of the same kind, E games on one thread);
* ``a3c``: ``runners/a3c.py`` with the standard network, W workers;
* ``pathnet``: ``pathevo a3c --agent pathnet`` (the paper's Atari library), W workers, for
  each library size M in ``--modules``: the cost of a step must not grow with M.

Each agent is timed in every torso precision of ``--precisions`` (float32, and bfloat16 mixed
precision, which halves the memory traffic of the convolutions and uses the CPU's bfloat16
instructions where it has them); the first one listed gives the top-level JSON figures.

Agent throughput is steady state: environment steps from the moment every worker has sent its
first update to the last update, over that wall time (process and environment start-up and
shut-down excluded).
One step is one action (4 frames).
Run ``pathevo bench a3c --workers 2 --json bench.json``.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from pathevo.agents.a3c import PRECISIONS, A3CConfig, Precision
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.envs.atari import make_atari_vector_env
from pathevo.runners import a3c as a3c_runner
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli


@dataclass
class BenchA3CConfig:
    """Steps per second of PathNet-A3C and A3C workers vs. the raw vector environment."""

    env_id: str = "ALE/Pong-v5"
    """An ALE id (the raw limit uses ale-py's vector env)."""
    workers: int = 2
    """Worker processes of the agents; threads of the raw vector env."""
    steps: int = 60_000
    """Environment steps per agent measurement (summed over workers; about 20 s each)."""
    raw_seconds: float = 10.0
    """How long to step the raw vector env."""
    a3c: A3CConfig = field(
        default_factory=lambda: A3CConfig(
            t_max=20, envs_per_worker=32, recompute=False, log_every=1
        )
    )
    """Agent settings: a worker steps envs-per-worker games (ale-py's vector env on its own
    thread), batches their inference and keeps the acting pass's graph for the loss."""
    modules: tuple[int, ...] = (10, 40)
    """Library sizes M to time PathNet-A3C with (the paper's is 10)."""
    precisions: tuple[Precision, ...] = ("float32", "bfloat16")
    """Torso precisions to time every agent in; the first gives the top-level JSON figures."""
    seed: int = 0
    """Seed of the envs and agents."""
    json: Path | None = None
    """Also write the results to this JSON file."""

    def __post_init__(self) -> None:
        if not self.env_id.startswith("ALE/"):
            raise ValueError(f"the raw limit needs an ALE id (ALE/<Game>-v5), got {self.env_id}")
        if self.workers <= 0 or self.steps <= 0 or self.raw_seconds <= 0:
            raise ValueError("workers, steps and raw_seconds must be positive")
        if not self.modules or min(self.modules) < 4:
            raise ValueError("modules needs library sizes M >= 4 (N = 4 modules are active)")
        self.modules = tuple(sorted(set(self.modules)))
        if self.a3c.precision != "float32":
            raise ValueError("choose the torso precisions with --precisions, not --a3c.precision")
        if not self.precisions or not set(self.precisions) <= set(PRECISIONS):
            raise ValueError(f"precisions must be some of {PRECISIONS}, got {self.precisions}")


def raw_steps_per_second(cfg: BenchA3CConfig) -> float:
    """Random-action steps per second of ale-py's vector env, W threads, W·E envs."""
    num_envs = cfg.workers * cfg.a3c.envs_per_worker
    env = make_atari_vector_env(cfg.env_id, num_envs, num_threads=cfg.workers)
    rng = np.random.default_rng(cfg.seed)
    try:
        env.reset(seed=cfg.seed)
        actions = env.single_action_space.n
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < cfg.raw_seconds:
            env.step(rng.integers(0, actions, num_envs))
            steps += num_envs
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


@dataclass(frozen=True)
class Measurement:
    """One agent setting to time."""

    agent: str
    modules: int
    precision: Precision

    @property
    def label(self) -> str:
        return "A3C" if self.agent == "a3c" else f"PathNet-A3C, M = {self.modules}"


def agent_steps_per_second(cfg: BenchA3CConfig, what: Measurement) -> float:
    """Steady-state steps per second of ``runners/a3c.py`` with this agent (a throwaway run)."""
    with tempfile.TemporaryDirectory() as run_dir:
        run = a3c_runner.A3CRunConfig(
            env_id=cfg.env_id, agent=what.agent, workers=cfg.workers, steps=cfg.steps,
            seed=cfg.seed, a3c=dataclasses.replace(cfg.a3c, precision=what.precision),
            pathnet=PathNetA3CConfig(modules=what.modules),
            run_dir=str(Path(run_dir) / "run"), checkpoint_every=10**12, progress=False,
        )  # fmt: skip
        return a3c_runner.main(run)["steps_per_second"]


def main(cfg: BenchA3CConfig) -> dict[str, Any]:
    """Measure, print a table, return (and optionally write) the results.

    The raw limit is measured before every agent and once at the end; each agent is compared
    with the mean of the two raw measurements around it, so that a change in the machine's load
    during the run (other processes) biases no ratio in particular.
    """
    console = Console()
    measurements = [
        Measurement(agent, modules, precision)
        for agent, modules in [("a3c", cfg.modules[0])] + [("pathnet", m) for m in cfg.modules]
        for precision in cfg.precisions
    ]
    raws, rates = [], []
    for what in measurements:
        console.print(f"raw vector env, {cfg.workers} threads ...")
        raws.append(raw_steps_per_second(cfg))
        console.print(f"{what.label} ({what.precision}), {cfg.workers} workers ...")
        rates.append(agent_steps_per_second(cfg, what))
    raws.append(raw_steps_per_second(cfg))
    arounds = [(raws[i] + raws[i + 1]) / 2 for i in range(len(rates))]
    fractions = [rate / around for rate, around in zip(rates, arounds, strict=True)]
    by_precision: dict[str, dict[str, Any]] = {
        precision: {"a3c_steps_per_second": 0.0, "pathnet_steps_per_second": {},
                    "a3c_fraction_of_raw": 0.0, "pathnet_fractions_of_raw": {}}
        for precision in cfg.precisions
    }  # fmt: skip
    for what, rate, fraction in zip(measurements, rates, fractions, strict=True):
        figures = by_precision[what.precision]
        if what.agent == "a3c":
            figures["a3c_steps_per_second"], figures["a3c_fraction_of_raw"] = rate, fraction
        else:
            figures["pathnet_steps_per_second"][str(what.modules)] = rate
            figures["pathnet_fractions_of_raw"][str(what.modules)] = fraction
    smallest, largest = str(cfg.modules[0]), str(cfg.modules[-1])
    for figures in by_precision.values():
        pathnet = figures["pathnet_steps_per_second"]
        figures["pathnet_fraction_of_raw"] = figures["pathnet_fractions_of_raw"][smallest]
        figures["pathnet_cost_ratio_largest_vs_smallest_m"] = pathnet[smallest] / pathnet[largest]
    headline = cfg.precisions[0]
    results = {
        "env_id": cfg.env_id,
        "workers": cfg.workers,
        "envs_per_worker": cfg.a3c.envs_per_worker,
        "t_max": cfg.a3c.t_max,
        "precision": headline,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "raw_steps_per_second": sum(raws) / len(raws),
        "raw_measurements": raws,
        **by_precision[headline],
        "by_precision": by_precision,
        "config": dataclasses.asdict(cfg),
    }
    table = Table(title=f"{cfg.env_id}, {cfg.workers} workers / threads: steps per second")
    for column in ("what", "torso", "steps/s", "raw around it", "fraction of raw"):
        table.add_column(column, justify="right")
    for what, rate, around, fraction in zip(measurements, rates, arounds, fractions, strict=True):
        row = [what.label, what.precision, f"{rate:,.0f}", f"{around:,.0f}", f"{fraction:.2f}"]
        table.add_row(*row)
    console.print(table)
    if cfg.json is not None:
        rd.write_json(cfg.json, results)
    return results


if __name__ == "__main__":
    run_cli(main, BenchA3CConfig, description=__doc__.split("\n\n")[0])
