"""Benchmark of PathNet's binary tournament: generations per second, serial against batched.

Fernando et al. 2017 (arXiv:1701.08734), the supervised binary task at the paper's settings:
L=3 layers of M=10 linear modules of 20 ReLU units, N=3 active, a population of 64, T=50
minibatches of 16 per evaluation, SGD at 0.05, salt-and-pepper noise 0.5, 784 inputs, one torch
thread. A generation is one binary tournament (two contestants trained for T minibatches each,
the winner's mutated copy over the loser), whichever way it runs:

- serial: :func:`pathevo.evolution.tournament.evolve` with ``tournaments_at_once=0``, the
  contestants trained one after the other (:func:`pathevo.agents.supervised.train_path`);
- K at once: ``tournaments_at_once=K``, the 2K contestants of a round trained together in one
  batched call (:meth:`pathevo.agents.supervised.PathTrainer.evaluate_together`).

Every configuration evolves its own population, library and head on the same synthetic task of
28×28 two-class images (the data do not change what a step costs; nothing is read from disk).
The batched trainer keeps freed memory in the process
(:func:`pathevo.agents.processes.keep_freed_memory`); the serial tournament, timed in the same
process, runs with the same setting. All timings come from one run, side by side: ``--rounds``
rounds each time ``--generations`` generations of the serial tournament and of every K in turn;
a figure is the median over the rounds, and a ratio the median of the per-round ratios to
serial, so a burst of load from another process hits every configuration alike. Goal
(reported, not asserted): K = ``--goal-k`` does at least 3x the serial generations per second.
``--json PATH`` writes the figures. Run ``pathevo bench tournament --json tournament_bench.json``.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from pathevo.agents.processes import keep_freed_memory
from pathevo.agents.supervised import PathTrainer, SupervisedConfig
from pathevo.envs.digits import BinaryTask
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.toolbox import make_toolbox
from pathevo.evolution.tournament import SearchState, evolve
from pathevo.modules.library import linear_library
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli

SPEEDUP_GOAL = 3.0
"""Generations per second of K = ``goal_k`` tournaments at once over the serial tournament."""


@dataclass
class BenchTournamentConfig:
    """What to time (defaults: the paper's binary-MNIST settings)."""

    tournaments: tuple[int, ...] = (1, 2, 4, 8)
    """K values: tournaments per round whose contestants train together."""
    goal_k: int = 8
    """The K whose speed-up over serial is held against the goal (one of --tournaments)."""
    generations: int = 48
    """Generations timed per configuration and round (a multiple of every K keeps rounds whole)."""
    warmup: int = 8
    """Generations each configuration runs, untimed, before the first round."""
    rounds: int = 3
    """Rounds of timings (serial and every K each round); figures are medians over them."""
    population: int = 64
    """Path genomes per configuration."""
    layers: int = 3
    """L: layers of the library."""
    modules: int = 10
    """M: modules per layer."""
    active: int = 3
    """N: modules a path uses per layer."""
    hidden: int = 20
    """ReLU units of a linear module."""
    side: int = 28
    """Images are side × side (784 inputs at 28)."""
    examples: int = 1000
    """Images in the synthetic task."""
    train: SupervisedConfig = field(default_factory=SupervisedConfig)
    """T, batch size, learning rate and noise of an evaluation."""
    threads: int = 1
    """Torch threads."""
    seed: int = 0
    """Seed of the task, the libraries, the heads, the populations and the minibatches."""
    json: str | None = None
    """Also write the figures to this JSON file."""

    def __post_init__(self) -> None:
        if not self.tournaments or min(self.tournaments) <= 0:
            raise ValueError("name at least one positive K (--tournaments)")
        if self.goal_k not in self.tournaments:
            raise ValueError(f"--goal-k {self.goal_k} must be one of --tournaments")
        if min(self.generations, self.rounds, self.threads, self.examples, self.hidden) <= 0:
            raise ValueError("generations, rounds, threads, examples and hidden must be positive")
        if self.warmup < 0:
            raise ValueError(f"warmup must be non-negative, got {self.warmup}")
        if self.side <= 0:
            raise ValueError(f"side must be positive, got {self.side}")
        # Every K must fit the population; EvoConfig says so in its own words.
        for k in self.tournaments:
            self.evo(k)

    def evo(self, k: int) -> EvoConfig:
        """The evolution settings of the configuration with ``k`` tournaments at once."""
        return EvoConfig(
            layers=self.layers, modules=self.modules, active=self.active,
            population=self.population, tournaments_at_once=k,
        )  # fmt: skip


def synthetic_task(examples: int, side: int, seed: int) -> BinaryTask:
    """Two classes of ``side`` × ``side`` images in [0, 1], hard enough that a path's accuracy
    climbs over many evaluations: each class a pattern of blobs (its upsampled 7×7 noise, the
    brightest 30 %), the two patterns drawn around a common one so that they differ in ~10 % of
    the pixels; every image its class's pattern shifted by up to 3 pixels and dimmed at random.
    """
    generator = torch.Generator().manual_seed(seed)
    common = torch.rand(1, 1, 7, 7, generator=generator)
    coarse = common + 0.3 * torch.rand(2, 1, 7, 7, generator=generator)
    blobs = F.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
    blobs = blobs.squeeze(1)  # [2, side, side]
    patterns = (blobs > blobs.flatten(1).quantile(0.7, dim=1).view(2, 1, 1)).float()
    y = torch.randint(2, (examples,), generator=generator)
    shifts = torch.randint(-3, 4, (examples, 2), generator=generator).tolist()
    images = torch.stack(
        [
            torch.roll(patterns[label], (dy, dx), (0, 1))
            for label, (dy, dx) in zip(y.tolist(), shifts, strict=True)
        ]
    )  # [n, side, side]
    brightness = 0.6 + 0.4 * torch.rand(examples, 1, 1, generator=generator)
    x = (images * brightness).flatten(1).contiguous()  # [n, side*side]
    return BinaryTask(name="synthetic", x=x, y=y)


@dataclass
class Contender:
    """One configuration's evolution: its K (0: serial), toolbox and search state."""

    k: int
    toolbox: Any
    state: SearchState


def make_contender(cfg: BenchTournamentConfig, k: int, task: BinaryTask) -> Contender:
    """A fresh population, library and head for K = ``k``, all seeded alike."""
    evo = cfg.evo(k)
    torch.manual_seed(cfg.seed)
    library = linear_library(task.input_size, cfg.hidden, cfg.layers, cfg.modules)
    head = nn.Linear(cfg.hidden, 2)
    trainer = PathTrainer(library, head, task, cfg.train, cfg.layers, cfg.active)
    toolbox = make_toolbox(evo, rng=random.Random(cfg.seed))
    toolbox.register("evaluate", trainer)
    toolbox.register("evaluate_together", trainer.evaluate_together)
    return Contender(k, toolbox, SearchState(population=toolbox.population(n=cfg.population)))


def run_generations(contender: Contender, generations: int) -> float:
    """Seconds ``generations`` more generations take (the threshold is never reached)."""
    state = contender.state
    start = time.perf_counter()
    evolve(state, contender.toolbox, state.generation + generations, threshold=math.inf)
    return time.perf_counter() - start


def main(cfg: BenchTournamentConfig) -> dict[str, Any]:
    """Time serial and every K, round after round; print the table; return (and write) it."""
    torch.set_num_threads(cfg.threads)
    keep_freed_memory()  # for every configuration alike
    task = synthetic_task(cfg.examples, cfg.side, cfg.seed)
    contenders = [make_contender(cfg, k, task) for k in (0, *cfg.tournaments)]
    for each in contenders:
        run_generations(each, cfg.warmup)
    rates: dict[int, list[float]] = {each.k: [] for each in contenders}
    for round_index in range(cfg.rounds):
        for each in contenders:
            torch.manual_seed(cfg.seed + round_index)  # the minibatches: the same for each K
            rates[each.k].append(cfg.generations / run_generations(each, cfg.generations))
    serial = rates[0]
    rows: dict[str, dict[str, Any]] = {}
    for each in contenders:
        name = "serial" if each.k == 0 else str(each.k)
        ratios = [rate / base for rate, base in zip(rates[each.k], serial, strict=True)]
        rows[name] = {
            "tournaments_at_once": each.k,
            "paths_per_step": 2 * each.k if each.k else 1,
            "generations_per_s": statistics.median(rates[each.k]),
            "rounds_generations_per_s": rates[each.k],
            "vs_serial": statistics.median(ratios),
            "generations": each.state.generation,
            "best_fitness": each.state.best_fitness,
        }
    speedup = rows[str(cfg.goal_k)]["vs_serial"]
    results: dict[str, Any] = {
        "settings": {
            "layers": cfg.layers, "modules": cfg.modules, "active": cfg.active,
            "hidden": cfg.hidden, "inputs": task.input_size, "population": cfg.population,
            "minibatches": cfg.train.minibatches, "batch_size": cfg.train.batch_size,
            "learning_rate": cfg.train.learning_rate, "noise": cfg.train.noise,
            "threads": cfg.threads, "rounds": cfg.rounds, "generations": cfg.generations,
        },
        "configurations": rows,
        "goal": {"k": cfg.goal_k, "speedup_min": SPEEDUP_GOAL, "speedup": speedup,
                 "met": speedup >= SPEEDUP_GOAL},
    }  # fmt: skip
    print_results(cfg, results)
    if cfg.json is not None:
        rd.write_json(cfg.json, results)
    return results


def print_results(cfg: BenchTournamentConfig, results: dict[str, Any]) -> None:
    console = Console()
    settings = results["settings"]
    table = Table(
        title=(
            f"Binary tournament, L={cfg.layers} M={cfg.modules} N={cfg.active}, "
            f"{cfg.hidden}-unit modules, {settings['inputs']} inputs, population "
            f"{cfg.population}, T={settings['minibatches']} x {settings['batch_size']}, "
            f"{cfg.threads} thread(s), median of {cfg.rounds} round(s) of {cfg.generations} "
            f"generations"
        )
    )
    for column in ("tournaments at once", "paths per step", "generations / s", "vs serial",
                   "best fitness"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, row in results["configurations"].items():
        table.add_row(
            name,
            str(row["paths_per_step"]),
            f"{row['generations_per_s']:.1f}",
            f"{row['vs_serial']:.2f}",
            f"{row['best_fitness']:.3f}",
        )
    console.print(table)
    goal = results["goal"]
    verdict = "met" if goal["met"] else "NOT met"
    console.print(
        f"K={goal['k']} vs serial: {goal['speedup']:.2f}x (goal >= {SPEEDUP_GOAL:g}x): {verdict}"
    )


if __name__ == "__main__":
    run_cli(main, BenchTournamentConfig, description=__doc__.split("\n\n")[0])
