"""The asynchronous tournament over shared population tensors."""

import math
import random

import pytest
import torch

from pathevo.evolution.async_tournament import SharedPopulation, async_tournament
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.toolbox import make_toolbox

EVO = EvoConfig(layers=2, modules=10, active=2, population=3)


def population_of(genomes, fitness):
    population = SharedPopulation.create(genomes)
    population.fitness.copy_(torch.tensor(fitness, dtype=torch.float64))
    return population


def test_tensors_are_shared_and_start_unevaluated():
    population = SharedPopulation.create([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert population.genomes.is_shared() and population.fitness.is_shared()
    assert population.fitness.isnan().all()
    assert population.path(1, 2, 2).tolist() == [[4, 5], [6, 7]]
    assert not population.genome(0).fitness.valid
    with pytest.raises(ValueError, match="at least 2"):
        SharedPopulation.create([[0, 1, 2, 3]])


def test_loser_adopts_a_mutated_copy_of_the_fittest_rival():
    genomes = [[0, 0, 0, 0], [5, 5, 5, 5], [9, 9, 9, 9]]
    population = population_of(genomes, [math.nan, 3.0, 7.0])
    toolbox = make_toolbox(EVO, rng=random.Random(0))
    outcome = async_tournament(population, 0, fitness=1.0, toolbox=toolbox, rivals=2)
    assert outcome.copied_from == 2 and sorted(outcome.rivals) == [1, 2]
    child = population.genomes[0].tolist()
    assert all(abs(gene - 9) <= EVO.max_shift and 0 <= gene <= 9 for gene in child)
    assert math.isnan(population.fitness[0])  # the copy has not been evaluated yet
    assert population.adoptions.tolist() == [1, 0, 0]
    assert population.genomes[2].tolist() == genomes[2]  # the rival is untouched


def test_ties_copy_and_a_fitter_genome_is_kept():
    population = population_of([[0, 0, 0, 0], [5, 5, 5, 5], [9, 9, 9, 9]], [math.nan, 4.0, 4.0])
    toolbox = make_toolbox(EVO, rng=random.Random(1))
    assert async_tournament(population, 0, 4.0, toolbox, rivals=2).copied_from is not None
    population = population_of([[0, 0, 0, 0], [5, 5, 5, 5], [9, 9, 9, 9]], [math.nan, 4.0, 4.0])
    outcome = async_tournament(population, 0, 4.5, toolbox, rivals=2)
    assert outcome.copied_from is None
    assert population.genomes[0].tolist() == [0, 0, 0, 0]
    assert population.fitness[0] == 4.5


def test_unevaluated_rivals_never_win():
    population = population_of([[0, 0, 0, 0], [5, 5, 5, 5], [9, 9, 9, 9]], [math.nan] * 3)
    toolbox = make_toolbox(EVO, rng=random.Random(2))
    outcome = async_tournament(population, 1, -100.0, toolbox, rivals=2)
    assert outcome.copied_from is None and population.fitness[1] == -100.0


def test_rivals_exclude_self_and_follow_the_seeded_toolbox():
    population = population_of([[i] * 4 for i in range(6)], [0.0] * 6)
    first = async_tournament(population, 3, 1.0, make_toolbox(EVO, rng=random.Random(5)), 2)
    population = population_of([[i] * 4 for i in range(6)], [0.0] * 6)
    again = async_tournament(population, 3, 1.0, make_toolbox(EVO, rng=random.Random(5)), 2)
    assert first.rivals == again.rivals and 3 not in first.rivals
    assert population.best() == 3
