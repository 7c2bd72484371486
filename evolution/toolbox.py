"""Where DEAP is wired: genome types at module top level, one ``make_toolbox``.

The types are created at import so that processes started with the *spawn* context can unpickle
genomes. Fitness is maximised (training accuracy, or episodic return).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from deap import base, creator, tools
from neat.genome import DefaultGenome, DefaultGenomeConfig

from pathevo.evolution.config import EvoConfig
from pathevo.evolution.cppn_genome import (
    crossover_genomes,
    genome_from_data,
    genome_to_data,
    make_genome_config,
    mutate_genome,
    new_cppn_genome,
    seeded_random,
)
from pathevo.evolution.neat_config import NeatConfig
from pathevo.evolution.neat_evolution import species_sizes
from pathevo.evolution.operators import layer_sizes, mutate_path, random_genome
from pathevo.evolution.speciation import compatibility_distance

if not hasattr(creator, "PathFitness"):
    creator.create("PathFitness", base.Fitness, weights=(1.0,))
if not hasattr(creator, "PathGenome"):
    creator.create("PathGenome", list, fitness=creator.PathFitness)

PathGenome = creator.PathGenome
MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def new_genome(
    cfg: EvoConfig, rng: random.Random, sizes: Sequence[int] | None = None
) -> PathGenome:
    """A uniformly random path genome of L*N genes (layer l's from its ``sizes[l]`` modules;
    ``cfg.modules`` in every layer by default)."""
    return PathGenome(random_genome(cfg.layers, cfg.active, sizes or cfg.modules, rng))


def path_genome_to_data(genome: PathGenome) -> dict[str, list]:
    """A path genome as plain data (a ``weights_only`` checkpoint holds it): genes and fitness
    values (empty when invalid)."""
    return {"genes": [int(gene) for gene in genome],
            "fitness": [float(value) for value in genome.fitness.values]}  # fmt: skip


def path_genome_from_data(data: dict[str, list]) -> PathGenome:
    """The genome :func:`path_genome_to_data` stored."""
    genome = PathGenome(int(gene) for gene in data["genes"])
    if data["fitness"]:
        genome.fitness.values = tuple(data["fitness"])
    return genome


def make_toolbox(
    cfg: EvoConfig,
    map_fn: MapFn = map,
    rng: random.Random | None = None,
    sizes: Sequence[int] | None = None,
) -> base.Toolbox:
    """A DEAP toolbox with the PathNet genome, mutation, selection and the evaluation ``map``.

    ``rng`` drives genome creation, mutation and selection; a fixed seed reproduces a run.
    ``sizes`` gives each layer's M when the library's layers differ (after growth, e.g.
    ``library.modules_per_layer``); by default every layer has ``cfg.modules``.
    The caller registers ``evaluate`` (genome -> (fitness,)); ``map`` is the single switch for
    parallel evaluation (see :mod:`pathevo.evolution.backends`). For
    ``cfg.tournaments_at_once`` K >= 1 (kept as ``toolbox.tournaments_at_once``) the caller may
    also register ``evaluate_together`` (genomes -> [(fitness,), ...]) to train a round's 2K
    contestants in one call (:func:`pathevo.evolution.tournament.evolve`).
    """
    rng = rng or random.Random()
    sizes = layer_sizes(cfg.modules if sizes is None else sizes, cfg.layers)
    if min(sizes) < cfg.active:
        raise ValueError(f"a path needs N={cfg.active} modules per layer; layer sizes {sizes}")
    toolbox = base.Toolbox()
    toolbox.register("genome", new_genome, cfg, rng, sizes)
    toolbox.register("population", tools.initRepeat, list, toolbox.genome)
    toolbox.register(
        "mutate",
        mutate_path,
        modules=sizes,
        rate=cfg.mutation_rate,
        max_shift=cfg.max_shift,
        wrap=cfg.wrap,
        rng=rng,
    )
    toolbox.register("pick", rng.sample)
    toolbox.register("map", map_fn)
    toolbox.tournaments_at_once = cfg.tournaments_at_once  # read by tournament.evolve
    return toolbox


# --- NEAT: CPPN genomes (neat-python DefaultGenome held by a DEAP individual) ----------------

if not hasattr(creator, "CPPNFitness"):
    creator.create("CPPNFitness", base.Fitness, weights=(1.0,))


def _rebuild_cppn_genome(genome: DefaultGenome, values: tuple[float, ...]) -> Any:
    individual = CPPNGenome(genome)
    if values:
        individual.fitness.values = values
    return individual


class _GenomeHolder:
    """Composition, not inheritance: neat's ``DefaultGenome.__init__`` sets ``fitness = None``,
    which would clobber the DEAP fitness. Pickles through a function of this module, so an
    unpickling process imports it (and so creates the ``creator`` types) first."""

    def __init__(self, genome: DefaultGenome) -> None:
        self.genome = genome

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_cppn_genome, (self.genome, self.fitness.values))

    def __repr__(self) -> str:
        nodes, connections = self.genome.size()
        return (
            f"CPPNGenome(key={self.genome.key}, nodes={nodes}, "
            f"enabled_connections={connections}, fitness={self.fitness.values})"
        )


if not hasattr(creator, "CPPNGenome"):
    creator.create("CPPNGenome", _GenomeHolder, fitness=creator.CPPNFitness)

CPPNGenome = creator.CPPNGenome


def cppn_individual_to_data(individual: CPPNGenome) -> dict[str, Any]:
    """A CPPN individual as plain data: its genome's dict
    (:func:`pathevo.evolution.cppn_genome.genome_to_data`) and DEAP fitness values."""
    return {"genome": genome_to_data(individual.genome),
            "fitness": [float(value) for value in individual.fitness.values]}  # fmt: skip


def cppn_individual_from_data(data: dict[str, Any]) -> CPPNGenome:
    """The individual :func:`cppn_individual_to_data` stored."""
    return _rebuild_cppn_genome(genome_from_data(data["genome"]), tuple(data["fitness"]))


def new_cppn_individual(config: DefaultGenomeConfig) -> CPPNGenome:
    """A minimal fully connected CPPN genome (fresh key) as a DEAP individual."""
    return CPPNGenome(new_cppn_genome(config))


def new_cppn_population(
    n: int, *, config: DefaultGenomeConfig, draw_seed: Callable[[], int]
) -> list[CPPNGenome]:
    """``n`` new individuals; neat-python's global ``random`` is seeded from ``draw_seed()``."""
    with seeded_random(draw_seed()):
        return [new_cppn_individual(config) for _ in range(n)]


def mutate_cppn(
    individual: CPPNGenome, *, config: DefaultGenomeConfig, node_add_prob: float
) -> tuple[CPPNGenome]:
    """NEAT mutation in place (see :func:`pathevo.evolution.cppn_genome.mutate_genome`); fitness
    invalidated. Returns ``(individual,)`` as DEAP mutations do."""
    mutate_genome(individual.genome, config, node_add_prob)
    del individual.fitness.values
    return (individual,)


def mate_cppn(
    parent1: CPPNGenome, parent2: CPPNGenome, *, config: DefaultGenomeConfig
) -> CPPNGenome:
    """One child by NEAT crossover (unlike DEAP's in-place mates; the parents are unchanged
    except their genomes' ``fitness`` mirrors the DEAP fitness). New key, no fitness."""
    key = config.innovation_tracker.new_genome_key()
    return CPPNGenome(
        crossover_genomes(
            parent1.genome,
            parent1.fitness.values[0],
            parent2.genome,
            parent2.fitness.values[0],
            key,
            config,
        )
    )


def spawn_cppn(parent: CPPNGenome, *, config: DefaultGenomeConfig) -> CPPNGenome:
    """An asexual offspring: a copy of ``parent``'s genome under a new key, no fitness."""
    genome = copy.deepcopy(parent.genome)
    genome.key = config.innovation_tracker.new_genome_key()
    genome.fitness = None
    return CPPNGenome(genome)


def make_neat_toolbox(
    cfg: NeatConfig,
    num_inputs: int,
    num_outputs: int,
    map_fn: MapFn = map,
    rng: random.Random | None = None,
) -> base.Toolbox:
    """A DEAP toolbox for NEAT on CPPN genomes with ``num_inputs`` inputs, ``num_outputs`` outputs.

    Registered: ``population(n)``, ``individual()``, ``mutate(ind)`` (in place), ``mate(p1, p2)
    -> child``, ``spawn(p) -> child``, ``select(members, k)`` (tournament of
    ``cfg.tournament_size``, used within a species), ``distance(g1, g2)`` (neat-python's
    compatibility distance on genomes), ``species_sizes(population, state)`` (the species
    ``next_generation`` will find, for logging), ``clone``, ``draw_seed()`` and ``map``. Attributes:
    ``neat_config``, ``rng`` and ``genome_config`` (the neat-python config with its tracker;
    picklable, so an evaluation can carry it to workers). Operators draw from the global
    ``random`` module as neat-python does; ``population`` and
    :func:`pathevo.evolution.neat_evolution.next_generation` seed it from ``rng`` (a fixed seed
    reproduces a serial run) and restore it afterwards.
    """
    rng = rng or random.Random()
    config = make_genome_config(cfg, num_inputs, num_outputs)
    toolbox = base.Toolbox()
    toolbox.neat_config = cfg
    toolbox.genome_config = config
    toolbox.rng = rng
    toolbox.register("draw_seed", rng.getrandbits, 64)
    toolbox.register("individual", new_cppn_individual, config)
    toolbox.register("population", new_cppn_population, config=config, draw_seed=toolbox.draw_seed)
    toolbox.register("mutate", mutate_cppn, config=config, node_add_prob=cfg.node_add_prob)
    toolbox.register("mate", mate_cppn, config=config)
    toolbox.register("spawn", spawn_cppn, config=config)
    toolbox.register("select", tools.selTournament, tournsize=cfg.tournament_size)
    toolbox.register("distance", compatibility_distance, config=config)
    toolbox.register("clone", copy.deepcopy)
    toolbox.register("species_sizes", species_sizes, toolbox=toolbox)
    toolbox.register("map", map_fn)
    return toolbox
