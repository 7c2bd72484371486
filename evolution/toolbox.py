"""Where DEAP is wired: genome types at module top level, one ``make_toolbox``.

The types are created at import so that processes started with the *spawn* context can unpickle
genomes. Fitness is maximised (training accuracy, or episodic return).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from deap import base, creator, tools

from evolution.config import EvoConfig
from evolution.operators import mutate_path, random_genome

if not hasattr(creator, "PathFitness"):
    creator.create("PathFitness", base.Fitness, weights=(1.0,))
if not hasattr(creator, "PathGenome"):
    creator.create("PathGenome", list, fitness=creator.PathFitness)

PathGenome = creator.PathGenome
MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def new_genome(cfg: EvoConfig, rng: random.Random) -> PathGenome:
    """A uniformly random path genome of L*N genes."""
    return PathGenome(random_genome(cfg.layers, cfg.active, cfg.modules, rng))


def make_toolbox(
    cfg: EvoConfig, map_fn: MapFn = map, rng: random.Random | None = None
) -> base.Toolbox:
    """A DEAP toolbox with the PathNet genome, mutation, selection and the evaluation ``map``.

    ``rng`` drives genome creation, mutation and selection; a fixed seed reproduces a run.
    The caller registers ``evaluate`` (genome -> (fitness,)); ``map`` is the single switch for
    parallel evaluation (see :mod:`evolution.backends`).
    """
    rng = rng or random.Random()
    toolbox = base.Toolbox()
    toolbox.register("genome", new_genome, cfg, rng)
    toolbox.register("population", tools.initRepeat, list, toolbox.genome)
    toolbox.register(
        "mutate",
        mutate_path,
        modules=cfg.modules,
        rate=cfg.mutation_rate,
        max_shift=cfg.max_shift,
        wrap=cfg.wrap,
        rng=rng,
    )
    toolbox.register("pick", rng.sample)
    toolbox.register("map", map_fn)
    return toolbox
