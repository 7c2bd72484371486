"""The asynchronous tournament of PathNet-A3C (Fernando et al. 2017, arXiv:1701.08734).

Every A3C worker owns one path genome of the population. After T episodes it records its fitness
(the return over those episodes), compares with B random others and, if one of them is at least
as fit, overwrites its own genome with a mutated copy of the fittest of them. The population's
genomes and fitness live in shared tensors so that every worker process sees them; reads and
writes are lock-free, like the Hogwild parameter updates (a genome read while another worker
writes it is still a valid genome: every gene is a module id in range).

Fitness ``NaN`` marks a genome not evaluated yet (fresh, or just copied): it never wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from deap import base

from pathevo.evolution.operators import genome_to_path
from pathevo.evolution.toolbox import PathGenome


@dataclass
class SharedPopulation:
    """Path genomes and their fitness in shared memory, one slot per worker."""

    genomes: torch.Tensor
    """[P, L*N] long: the flat genomes, layer-major."""
    fitness: torch.Tensor
    """[P] float64: the latest fitness of each slot; NaN until it is evaluated."""
    adoptions: torch.Tensor
    """[P] long: how many times each slot adopted a mutated copy of another genome."""

    @classmethod
    def create(cls, genomes: Sequence[Sequence[int]]) -> SharedPopulation:
        """Put ``genomes`` (P flat genomes of equal length) in shared memory, unevaluated."""
        if len(genomes) < 2:
            raise ValueError(f"a tournament needs at least 2 genomes, got {len(genomes)}")
        table = torch.tensor([list(g) for g in genomes], dtype=torch.long)
        population = cls(
            genomes=table,
            fitness=torch.full((len(genomes),), math.nan, dtype=torch.float64),
            adoptions=torch.zeros(len(genomes), dtype=torch.long),
        )
        population.share_memory()
        return population

    def share_memory(self) -> None:
        for tensor in (self.genomes, self.fitness, self.adoptions):
            tensor.share_memory_()

    def __len__(self) -> int:
        return self.genomes.shape[0]

    def genome(self, index: int) -> PathGenome:
        """A DEAP genome copy of slot ``index`` (with its fitness, if evaluated)."""
        genome = PathGenome(self.genomes[index].tolist())
        fitness = float(self.fitness[index])
        if not math.isnan(fitness):
            genome.fitness.values = (fitness,)
        return genome

    def path(self, index: int, layers: int, active: int) -> torch.Tensor:
        """Slot ``index`` as a path [L, N] long."""
        return genome_to_path(self.genomes[index].tolist(), layers, active)

    def best(self) -> int:
        """The slot with the highest fitness (slot 0 if none is evaluated)."""
        fitness = torch.nan_to_num(self.fitness, nan=-math.inf)
        return int(fitness.argmax())


@dataclass
class AsyncOutcome:
    """What one worker's tournament did."""

    index: int
    fitness: float
    rivals: list[int]
    copied_from: int | None
    """The rival whose mutated copy replaced the genome, or None if it was kept."""


def async_tournament(
    population: SharedPopulation,
    index: int,
    fitness: float,
    toolbox: base.Toolbox,
    rivals: int,
) -> AsyncOutcome:
    """Record slot ``index``'s ``fitness`` and compare it with ``rivals`` random others.

    If a rival is at least as fit, slot ``index`` gets a mutated copy of the fittest rival
    (``toolbox.mutate``) and becomes unevaluated. ``toolbox.pick`` (``rng.sample``) draws the
    rivals, so a seeded toolbox makes the choice reproducible.
    """
    if rivals <= 0:
        raise ValueError(f"rivals must be positive, got {rivals}")
    population.fitness[index] = fitness
    others = [i for i in range(len(population)) if i != index]
    picked = toolbox.pick(others, min(rivals, len(others)))
    scored = [(float(population.fitness[i]), i) for i in picked]
    scored = [(value, i) for value, i in scored if not math.isnan(value)]
    if not scored:
        return AsyncOutcome(index, fitness, picked, None)
    best_fitness, best = max(scored)
    if best_fitness < fitness:
        return AsyncOutcome(index, fitness, picked, None)
    (child,) = toolbox.mutate(toolbox.clone(population.genome(best)))
    population.genomes[index] = torch.tensor(list(child), dtype=torch.long)
    population.fitness[index] = math.nan
    population.adoptions[index] += 1
    return AsyncOutcome(index, fitness, picked, best)
