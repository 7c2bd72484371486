"""One NEAT generation over a DEAP population (Stanley & Miikkulainen 2002, "Evolving Neural
Networks through Augmenting Topologies", section 3): speciate, drop stagnant species, share
offspring by mean species fitness, keep each species' elites, breed the rest by tournament
selection within the species, crossover and mutation.

Works on the toolbox of :func:`pathevo.evolution.toolbox.make_neat_toolbox`. ``NeatState`` holds
every counter the run needs (innovation numbers, node/genome/species keys), so a pickled
(population, state) resumes with a fresh toolbox and numbers continue.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deap import base

from pathevo.evolution.cppn_genome import (
    NeatTracker,
    genome_from_data,
    genome_to_data,
    seeded_random,
)
from pathevo.evolution.neat_config import NeatConfig
from pathevo.evolution.speciation import (
    Species,
    adjust_threshold,
    allocate_offspring,
    speciate,
    species_from_data,
    species_to_data,
    surviving_species,
    update_stagnation,
)


@dataclass
class NeatState:
    """Everything NEAT carries between generations besides the population. Picklable."""

    generation: int
    threshold: float
    """Current compatibility threshold."""
    innovation: int
    """Last innovation number handed out."""
    next_node_key: int
    next_genome_key: int
    next_species_key: int = 0
    species: dict[int, Species] = field(default_factory=dict)
    """Species of the last speciated (evaluated) generation, with stagnation records."""

    @classmethod
    def initial(cls, cfg: NeatConfig) -> NeatState:
        """Generation 0 without counters: ``next_generation`` then takes them from the toolbox
        that made the population (counters only ever move forward)."""
        return cls(0, cfg.compatibility_threshold, 0, 0, 0)


def neat_state_to_data(state: NeatState) -> dict[str, Any]:
    """The state as plain data (a ``weights_only`` checkpoint holds it): counters, threshold and
    the species, their representatives as genome dicts."""
    species = {key: species_to_data(s, genome_to_data) for key, s in state.species.items()}
    return {**dataclasses.asdict(dataclasses.replace(state, species={})), "species": species}


def neat_state_from_data(data: dict[str, Any]) -> NeatState:
    """The state :func:`neat_state_to_data` stored."""
    species = {key: species_from_data(s, genome_from_data) for key, s in data["species"].items()}
    return NeatState(**{**data, "species": species})


def initial_state(toolbox: base.Toolbox) -> NeatState:
    """The state right after ``toolbox.population(n)``: generation 0, no species yet."""
    tracker: NeatTracker = toolbox.genome_config.innovation_tracker
    return NeatState(
        generation=0,
        threshold=toolbox.neat_config.compatibility_threshold,
        innovation=tracker.global_counter,
        next_node_key=tracker.next_node_key,
        next_genome_key=tracker.next_genome_key,
    )


def current_species(
    population: Sequence[Any], state: NeatState, toolbox: base.Toolbox
) -> tuple[dict[int, Species], int]:
    """The species ``next_generation`` will find in ``population`` (and the next species key);
    deterministic, and ``state`` is left unchanged."""
    return speciate(
        [ind.genome for ind in population],
        state.species,
        state.threshold,
        toolbox.distance,
        state.generation,
        state.next_species_key,
    )


def species_sizes(population: Sequence[Any], state: NeatState, toolbox: base.Toolbox) -> list[int]:
    """Members per species of ``population`` (in species key order), for logging."""
    species, _ = current_species(population, state, toolbox)
    return [len(s.members) for _, s in sorted(species.items())]


def _fitness(individual: Any) -> float:
    if not individual.fitness.valid:
        raise ValueError(f"genome {individual.genome.key} has no fitness; evaluate first")
    return individual.fitness.values[0]


def next_generation(
    population: Sequence[Any], state: NeatState, toolbox: base.Toolbox
) -> tuple[list[Any], NeatState]:
    """Breed the next population from an evaluated one; return it and the new state.

    Elites keep their genome key and fitness (they need no re-evaluation when fitness is
    deterministic); every other offspring has a new key and no fitness. The global ``random``
    module, which neat-python uses, is seeded from ``toolbox.draw_seed()`` for the duration and
    restored afterwards.
    """
    cfg = toolbox.neat_config
    fitnesses = [_fitness(ind) for ind in population]
    tracker: NeatTracker = toolbox.genome_config.innovation_tracker
    # The state carries the counters (a resumed run continues its numbering); max() also accepts
    # NeatState.initial's zeros after the toolbox numbered the first population.
    tracker.global_counter = max(tracker.global_counter, state.innovation)
    tracker.next_node_key = max(tracker.next_node_key, state.next_node_key)
    tracker.next_genome_key = max(tracker.next_genome_key, state.next_genome_key)
    tracker.reset_generation()
    with seeded_random(toolbox.draw_seed()):
        species, next_species_key = current_species(population, state, toolbox)
        update_stagnation(species, fitnesses, state.generation)
        alive = surviving_species(
            species, state.generation, cfg.max_stagnation, cfg.species_elitism
        )
        means = [sum(fitnesses[i] for i in species[k].members) / len(species[k].members)
                 for k in alive]  # fmt: skip
        if not all(math.isfinite(m) for m in means):
            raise ValueError("fitness values must be finite")
        counts = allocate_offspring(means, cfg.population, cfg.min_species_size)
        offspring: list[Any] = []
        for key, count in zip(alive, counts, strict=True):
            members = sorted(species[key].members, key=lambda i: (-fitnesses[i], i))
            parents = [population[i] for i in members]
            elites = min(cfg.elitism, count, len(parents))
            offspring.extend(toolbox.clone(p) for p in parents[:elites])
            for _ in range(count - elites):
                if random.random() < cfg.crossover_prob and len(parents) > 1:
                    child = toolbox.mate(*toolbox.select(parents, 2))
                else:
                    child = toolbox.spawn(toolbox.select(parents, 1)[0])
                toolbox.mutate(child)
                offspring.append(child)
    threshold = adjust_threshold(
        state.threshold, len(species), cfg.target_species, cfg.threshold_step, cfg.min_threshold
    )
    new_state = NeatState(
        generation=state.generation + 1,
        threshold=threshold,
        innovation=tracker.global_counter,
        next_node_key=tracker.next_node_key,
        next_genome_key=tracker.next_genome_key,
        next_species_key=next_species_key,
        species={key: species[key] for key, count in zip(alive, counts, strict=True) if count > 0},
    )
    return offspring, new_state
