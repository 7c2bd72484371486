"""Serial binary tournament: the loser is overwritten by a mutated copy of the winner."""

import random

from pathevo.evolution.config import EvoConfig
from pathevo.evolution.toolbox import PathGenome, make_toolbox
from pathevo.evolution.tournament import (
    SearchState,
    binary_tournament,
    evolve,
    search_from_data,
    search_to_data,
)


def toolbox_with(fitness_of, seed=0, **cfg):
    toolbox = make_toolbox(EvoConfig(**cfg), rng=random.Random(seed))
    toolbox.register("evaluate", lambda genome: (fitness_of(genome),))
    return toolbox


def test_loser_is_replaced_by_a_mutated_copy_of_the_winner():
    toolbox = toolbox_with(lambda genome: float(sum(genome)), population=2, modules=10)
    population = [PathGenome([9] * 9), PathGenome([0] * 9)]
    outcome = binary_tournament(population, toolbox)
    assert population[outcome.winner] == [9] * 9
    assert outcome.winner_fitness == 81.0 and outcome.loser_fitness == 0.0
    child = population[outcome.loser]
    assert child is not population[outcome.winner]
    assert sum(g != 9 for g in child) <= 9  # a copy of the winner, at most mutated
    assert not child.fitness.valid  # the newcomer has not been evaluated yet


def test_mutation_is_applied_to_the_copy():
    toolbox = toolbox_with(lambda genome: 1.0, population=2, modules=10, layers=1, active=1)
    toolbox.register("mutate", lambda genome: (genome.__setitem__(0, 7) or genome,))
    population = [PathGenome([3]), PathGenome([5])]
    outcome = binary_tournament(population, toolbox)
    assert {outcome.winner, outcome.loser} == {0, 1}
    assert population[outcome.loser] == [7]
    assert population[outcome.winner] in ([3], [5])


def test_winner_keeps_its_genome_and_fitness():
    toolbox = toolbox_with(lambda genome: float(genome[0]), population=2, layers=1, active=1)
    population = [PathGenome([2]), PathGenome([6])]
    outcome = binary_tournament(population, toolbox)
    assert population[outcome.winner] == [6]
    assert population[outcome.winner].fitness.values == (6.0,)


def test_evolve_stops_at_threshold_and_records_the_logbook():
    toolbox = toolbox_with(lambda genome: sum(genome) / 81, seed=1, population=8)
    state = SearchState(population=toolbox.population(n=8))
    seen = []
    evolve(state, toolbox, max_generations=500, threshold=0.7,
           on_generation=lambda *, state, outcome: seen.append(state.generation))  # fmt: skip
    assert state.solved_at is not None and state.solved_at == state.generation == seen[-1]
    assert len(state.logbook) == state.generation
    assert state.best_fitness >= 0.7
    assert sum(state.best) / 81 == state.best_fitness


def test_evolution_improves_a_simple_fitness():
    toolbox = toolbox_with(lambda genome: sum(genome) / 81, seed=2, population=16)
    state = SearchState(population=toolbox.population(n=16))
    first_mean = sum(sum(g) for g in state.population) / (16 * 81)
    evolve(state, toolbox, max_generations=300, threshold=2.0)
    assert state.solved_at is None and state.generation == 300
    last_mean = sum(sum(g) for g in state.population) / (16 * 81)
    assert last_mean > first_mean + 0.2


def test_search_state_to_data_and_back_resumes_exactly():
    """Plain data (a ``weights_only`` checkpoint): population, fitness, hall of fame and logbook
    come back equal, and evolution goes on exactly as it would have."""
    import io

    import torch

    def fitness_of(genome):
        return sum(genome) / 90

    def toolbox_on(rng):
        toolbox = make_toolbox(EvoConfig(population=6, modules=10), rng=rng)
        toolbox.register("evaluate", lambda genome: (fitness_of(genome),))
        return toolbox

    rng = random.Random(1)
    toolbox = toolbox_on(rng)
    state = SearchState(population=toolbox.population(n=6))
    evolve(state, toolbox, 5, threshold=2.0)
    buffer = io.BytesIO()
    torch.save({"search": search_to_data(state), "rng": rng.getstate()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    restored = search_from_data(saved["search"])
    assert restored.population == state.population
    assert [g.fitness.values for g in restored.population] == [
        g.fitness.values for g in state.population
    ]
    assert list(restored.hall_of_fame) == list(state.hall_of_fame)
    assert restored.hall_of_fame[0].fitness.values == state.hall_of_fame[0].fitness.values
    assert restored.logbook == state.logbook and restored.best == state.best
    assert (restored.generation, restored.best_fitness) == (state.generation, state.best_fitness)

    evolve(state, toolbox, 20, threshold=2.0)
    resumed_rng = random.Random()
    resumed_rng.setstate(saved["rng"])
    evolve(restored, toolbox_on(resumed_rng), 20, threshold=2.0)
    assert restored.population == state.population and restored.logbook == state.logbook
    assert restored.best == state.best and restored.generation == state.generation == 20


def test_path_genome_to_data_and_back_keeps_fitness():
    from pathevo.evolution.toolbox import path_genome_from_data, path_genome_to_data

    genome = PathGenome([1, 2, 3])
    assert path_genome_from_data(path_genome_to_data(genome)).fitness.valid is False
    genome.fitness.values = (0.5,)
    again = path_genome_from_data(path_genome_to_data(genome))
    assert again == genome and again.fitness.values == (0.5,) and type(again) is PathGenome
