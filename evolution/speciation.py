"""Speciation, stagnation and offspring allocation for NEAT (Stanley & Miikkulainen 2002,
"Evolving Neural Networks through Augmenting Topologies", section 3.3), with the compatibility
threshold steered towards a target species count (as in SharpNEAT; neat-python keeps it fixed).

Pure functions over genomes and a distance; the compatibility distance itself is
neat-python's ``DefaultGenome.distance`` (see :func:`compatibility_distance`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Distance = Callable[[Any, Any], float]


@dataclass
class Species:
    """A species: its representative genome, this generation's members and stagnation record."""

    key: int
    representative: Any
    """The genome new genomes are compared with (a member of the last speciated generation)."""
    created: int
    """Generation the species appeared in."""
    members: list[int] = field(default_factory=list)
    """Indices into the population last speciated."""
    fitness: float = -math.inf
    """Best member fitness of the last speciated generation."""
    best_fitness: float = -math.inf
    """Best fitness the species ever reached."""
    last_improved: int = 0
    """Generation ``best_fitness`` last rose."""


def species_to_data(species: Species, encode: Callable[[Any], Any]) -> dict[str, Any]:
    """A species as plain data, its representative through ``encode`` (e.g.
    :func:`pathevo.evolution.cppn_genome.genome_to_data`)."""
    data = dataclasses.asdict(dataclasses.replace(species, representative=None))
    return {**data, "representative": encode(species.representative)}


def species_from_data(data: dict[str, Any], decode: Callable[[Any], Any]) -> Species:
    """The species :func:`species_to_data` stored, its representative through ``decode``."""
    return Species(**{**data, "representative": decode(data["representative"]),
                      "members": list(data["members"])})  # fmt: skip


def compatibility_distance(genome1: Any, genome2: Any, config: Any) -> float:
    """neat-python's NEAT compatibility distance ``genome1.distance(genome2, config)``.

    The paper's delta = c1*E/N + c2*D/N + c3*W_bar. neat-python computes, over connection genes
    (matched by key (i, o), which pathevo keeps one-to-one with innovation numbers) and likewise
    over node genes, and adds the two::

        (c_d * (D + E) + c_w * sum_matching d(g1, g2)) / N

    with c_d = ``compatibility_disjoint_coefficient`` (c1 = c2: excess and disjoint genes are not
    told apart), c_w = ``compatibility_weight_coefficient`` (c3), N = the larger gene count, and
    the gene difference d = |w1 - w2| + [enabled differs] for connections,
    |b1 - b2| + |r1 - r2| + |tau1 - tau2| + [activation differs] + [aggregation differs] for
    nodes. So c3's term is c_w * (M / N) * W_bar (summed over matching genes, divided by N, not by
    the number M of matching genes).
    """
    return float(genome1.distance(genome2, config))


def speciate(
    genomes: Sequence[Any],
    species: dict[int, Species],
    threshold: float,
    distance: Distance,
    generation: int,
    next_key: int,
) -> tuple[dict[int, Species], int]:
    """Assign ``genomes`` to species; return the new species (by key) and the next species key.

    Each old species (in key order) takes its representative's closest unassigned genome as its
    new representative, if closer than ``threshold`` and not within ``threshold`` of an older
    species' new representative (else the species dies out or merges: with representatives
    alone, a raised threshold would never reduce the species count). Every other genome joins
    the species of the closest representative within ``threshold``, or founds one.
    """
    unassigned = list(range(len(genomes)))
    result: dict[int, Species] = {}
    for key in sorted(species):
        if not unassigned:
            break
        old = species[key]
        d, index = min((distance(old.representative, genomes[i]), i) for i in unassigned)
        merged = any(
            distance(s.representative, genomes[index]) < threshold for s in result.values()
        )
        if d < threshold and not merged:
            unassigned.remove(index)
            result[key] = Species(
                key,
                genomes[index],
                old.created,
                [index],
                old.fitness,
                old.best_fitness,
                old.last_improved,
            )
    for index in unassigned:
        candidates = [(distance(s.representative, genomes[index]), k) for k, s in result.items()]
        d, key = min(candidates, default=(math.inf, -1))
        if d < threshold:
            result[key].members.append(index)
        else:
            result[next_key] = Species(next_key, genomes[index], generation, [index])
            result[next_key].last_improved = generation
            next_key += 1
    return result, next_key


def adjust_threshold(
    threshold: float, num_species: int, target: int, step: float, minimum: float
) -> float:
    """Move the compatibility threshold one ``step`` towards ``target`` species."""
    if num_species < target:
        threshold -= step
    elif num_species > target:
        threshold += step
    return max(threshold, minimum)


def update_stagnation(
    species: dict[int, Species], fitnesses: Sequence[float], generation: int
) -> None:
    """Record each species' best member fitness; stamp ``last_improved`` when it beats the best."""
    for s in species.values():
        s.fitness = max(fitnesses[i] for i in s.members)
        if s.fitness > s.best_fitness:
            s.best_fitness = s.fitness
            s.last_improved = generation


def surviving_species(
    species: dict[int, Species], generation: int, max_stagnation: int, species_elitism: int
) -> list[int]:
    """Keys of species that get offspring: not stagnant (improved within ``max_stagnation``
    generations), plus the ``species_elitism`` fittest species whatever their record."""
    ranked = sorted(species, key=lambda k: (-species[k].fitness, k))
    protected = set(ranked[:species_elitism])
    return [
        k
        for k in ranked
        if k in protected or generation - species[k].last_improved < max_stagnation
    ]


def allocate_offspring(scores: Sequence[float], total: int, min_size: int) -> list[int]:
    """Offspring counts summing to ``total``: ``min_size`` each (less if unaffordable), the rest
    proportional to ``scores`` shifted to be non-negative (largest-remainder rounding).

    With explicit fitness sharing, a species' summed adjusted fitness is its mean fitness, so
    ``scores`` are the species' mean fitnesses.
    """
    n = len(scores)
    if n == 0:
        raise ValueError("cannot allocate offspring to zero species")
    base = min(min_size, total // n)
    free = total - base * n
    low = min(scores)
    weights = [s - low for s in scores]
    weight_sum = sum(weights)
    if weight_sum <= 0.0 or not math.isfinite(weight_sum):
        weights, weight_sum = [1.0] * n, float(n)
    quotas = [free * w / weight_sum for w in weights]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(n), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: free - sum(counts)]:
        counts[i] += 1
    return [base + c for c in counts]
