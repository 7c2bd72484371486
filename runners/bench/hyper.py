"""Benchmark of HyperNEAT's two costs: expressing weights from a CPPN, and scoring genomes.

Stanley et al. 2009: a CPPN is queried once per connection of the substrate. We time, side by
side in one run,

1. **expression**: a ``--cppn-nodes``-node CPPN (:func:`pathevo.modules.cppn.random_cppn` with
hidden
   nodes; 7 inputs) generating (a) one conv module of PathNet's first Atari layer
   on an 84×84 input (``--conv`` = C_out, C_in, k) and (b) a linear module from the 84×84 screen
   to a ``--hidden``×``--hidden`` grid, with the compiled torch CPPN (all queries at once,
   :func:`pathevo.modules.substrate.conv_weights` /
   :func:`~pathevo.modules.substrate.linear_weights`) against the node-by-node,
   connection-by-connection Python reference (:func:`pathevo.modules.cppn.reference_cppn`). The
   reference's time per query is measured on ``--reference-queries`` queries and multiplied by the
   module's query count (it is linear in the queries; the full linear module would take minutes) —
   the JSON says which figures are extrapolated;
2. **evaluation**: genomes scored per second on ``--env-id`` (CartPole-v1) over the map
   backend with 1 and with 2 processes (pool start-up excluded: one warm-up generation first).

``--json PATH`` writes the figures, among them ``vectorised_speedup`` (conv module) and
``process_speedup`` (2 processes over 1). Run ``pathevo bench hyper --json
hyper_bench.json`` (figures: README, "HyperNEAT").
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from pathevo.agents.neuroevolution import (
    CPPN_INPUTS,
    CPPN_OUTPUTS,
    FitnessTask,
    HyperNEATConfig,
    genome_fitness,
)
from pathevo.agents.phase import env_spaces
from pathevo.evolution.backends import map_backend
from pathevo.evolution.neat_config import NeatConfig
from pathevo.evolution.toolbox import make_neat_toolbox
from pathevo.modules.cppn import CPPNGraph, compile_cppn, random_cppn, reference_cppn
from pathevo.modules.substrate import (
    connection_queries,
    conv_queries,
    conv_weights,
    grid_positions,
    linear_weights,
)
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli


@dataclass
class BenchHyperConfig:
    """What to time."""

    cppn_nodes: int = 20
    """Nodes of the benchmark CPPN as NEAT counts them: 2 outputs and cppn-nodes - 2 hidden
    nodes (each fed by 3 earlier nodes, feeding both outputs), beside the 7 inputs."""
    conv: tuple[int, int, int] = (8, 4, 8)
    """The conv module: output channels, input channels, kernel size (PathNet's first layer)."""
    hidden: int = 8
    """The linear module maps the 84×84 screen to a hidden × hidden grid."""
    reference_queries: int = 5_000
    """Queries the Python reference is timed on (its figure per module is extrapolated)."""
    repeats: int = 5
    """Vectorised timings: the median of this many runs."""
    env_id: str = "CartPole-v1"
    """Environment of the evaluation benchmark."""
    population: int = 40
    """Genomes per timed generation."""
    generations: int = 2
    """Timed generations per process count (after one warm-up generation)."""
    seed: int = 0
    """Seed of the CPPN and the genomes."""
    json: str | None = None
    """Also write the figures to this JSON file."""

    def __post_init__(self) -> None:
        if self.cppn_nodes < 2:
            raise ValueError("cppn-nodes must be at least 2 (the outputs)")
        if min(self.conv) <= 0 or self.hidden <= 0:
            raise ValueError("conv sizes and hidden must be positive")
        for name in ("reference_queries", "repeats", "population", "generations"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive")


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (first-call allocations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _reference_per_query(graph: CPPNGraph, queries: torch.Tensor) -> float:
    rows = queries.tolist()
    start = time.perf_counter()
    for row in rows:
        reference_cppn(graph, row)
    return (time.perf_counter() - start) / len(rows)


def expression_figures(cfg: BenchHyperConfig) -> dict[str, Any]:
    """Vectorised vs reference expression of a conv and a linear module."""
    graph = random_cppn(CPPN_INPUTS, 2, random.Random(cfg.seed), hidden=cfg.cppn_nodes - 2)
    cppn = compile_cppn(graph)
    out_channels, in_channels, kernel = cfg.conv
    screen, hidden = grid_positions((84, 84)), grid_positions((cfg.hidden, cfg.hidden))
    modules = {
        "conv": (
            lambda: conv_weights(cppn, in_channels, out_channels, kernel),
            conv_queries(in_channels, out_channels, kernel),
        ),
        "linear": (
            lambda: linear_weights(cppn, screen, hidden),
            connection_queries(screen, hidden),
        ),
    }
    figures: dict[str, Any] = {
        "cppn_nodes": graph.num_nodes,
        "cppn_connections": graph.num_connections,
    }
    for name, (vectorised, queries) in modules.items():
        seconds = _median_seconds(vectorised, cfg.repeats)
        sample = queries[: cfg.reference_queries]
        per_query = _reference_per_query(graph, sample)
        reference = per_query * len(queries)
        figures[name] = {
            "connections": len(queries),
            "vectorised_seconds": seconds,
            "reference_seconds": reference,
            "reference_extrapolated": len(sample) < len(queries),
            "speedup": reference / seconds,
        }
    return figures


def evaluation_figures(cfg: BenchHyperConfig) -> dict[str, Any]:
    """Genomes per second on ``cfg.env_id`` with 1 and 2 processes."""
    obs_shape, num_actions = env_spaces(cfg.env_id, cfg.seed)
    task = FitnessTask(cfg.env_id, obs_shape, num_actions, HyperNEATConfig(), cfg.seed)
    neat_cfg = NeatConfig(population=cfg.population, target_species=1)  # no evolution here
    toolbox = make_neat_toolbox(neat_cfg, CPPN_INPUTS, CPPN_OUTPUTS, rng=random.Random(cfg.seed))
    population = toolbox.population(n=cfg.population)
    for individual in population:  # some structure, as after a few generations
        for _ in range(3):
            toolbox.mutate(individual)
    figures = {}
    for workers in (1, 2):
        with map_backend("processes", workers, cfg.seed) as map_fn:
            list(map_fn(_Score(task), population))  # warm-up: start the pool, build the envs
            start = time.perf_counter()
            for _ in range(cfg.generations):
                list(map_fn(_Score(task), population))
            seconds = time.perf_counter() - start
        figures[f"processes_{workers}"] = {
            "genomes_per_second": cfg.generations * len(population) / seconds,
            "seconds": seconds,
        }
    return figures


@dataclass(frozen=True)
class _Score:
    task: FitnessTask

    def __call__(self, individual: Any) -> tuple[float]:
        return genome_fitness(self.task, individual)


def main(cfg: BenchHyperConfig) -> dict[str, Any]:
    """Run both benchmarks, print them side by side, return (and optionally write) the figures."""
    torch.set_num_threads(1)
    expression = expression_figures(cfg)
    evaluation = evaluation_figures(cfg)
    results = {
        "expression": expression,
        "evaluation": evaluation,
        "vectorised_speedup": expression["conv"]["speedup"],
        "linear_vectorised_speedup": expression["linear"]["speedup"],
        "process_speedup": evaluation["processes_2"]["genomes_per_second"]
        / evaluation["processes_1"]["genomes_per_second"],
        "env_id": cfg.env_id,
    }
    print_tables(Console(), results)
    if cfg.json is not None:
        rd.write_json(cfg.json, results)
    return results


def print_tables(console: Console, results: dict[str, Any]) -> None:
    expression = results["expression"]
    table = Table(title=f"Expressing a module from a {expression['cppn_nodes']}-node CPPN")
    for column in ("module", "connections", "vectorised", "per-connection reference", "speedup"):
        table.add_column(column, justify="right")
    for name in ("conv", "linear"):
        row = expression[name]
        mark = "*" if row["reference_extrapolated"] else ""
        table.add_row(
            name, f"{row['connections']:,}", f"{row['vectorised_seconds'] * 1e3:.2f} ms",
            f"{row['reference_seconds'] * 1e3:,.0f} ms{mark}", f"{row['speedup']:,.0f}×",
        )  # fmt: skip
    console.print(table)
    console.print("* extrapolated from the reference's time per query on a sample")
    evaluation = Table(title=f"Genomes scored per second on {results['env_id']}")
    for column in ("processes", "genomes/s", "speedup"):
        evaluation.add_column(column, justify="right")
    one = results["evaluation"]["processes_1"]["genomes_per_second"]
    for workers in (1, 2):
        rate = results["evaluation"][f"processes_{workers}"]["genomes_per_second"]
        evaluation.add_row(str(workers), f"{rate:.1f}", f"{rate / one:.2f}×")
    console.print(evaluation)


if __name__ == "__main__":
    run_cli(main, BenchHyperConfig, description=__doc__.split("\n\n")[0])
