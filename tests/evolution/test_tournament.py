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


# --- several tournaments at once (tournaments_at_once = K >= 1) --------------------------------


def batched_toolbox_with(fitness_of, seed=0, **cfg):
    """``toolbox_with`` plus an ``evaluate_together`` that records the genomes of each call."""
    toolbox = toolbox_with(fitness_of, seed, **cfg)
    calls = []

    def evaluate_together(genomes):
        calls.append(list(genomes))
        return [(fitness_of(genome),) for genome in genomes]

    toolbox.register("evaluate_together", evaluate_together)
    return toolbox, calls


def test_one_tournament_at_once_is_the_serial_tournament_exactly():
    """K = 1 with a deterministic evaluation: the same picks, mutations, logbook and hall of
    fame as the serial tournament, generation for generation."""
    runs = []
    for k in (0, 1):
        toolbox, calls = batched_toolbox_with(lambda g: sum(g) / 81, seed=3, population=8)
        state = SearchState(population=toolbox.population(n=8))
        outcomes = []

        def keep(*, state, outcome, outcomes=outcomes):
            outcomes.append(outcome)

        evolve(state, toolbox, 300, threshold=0.8, on_generation=keep, tournaments_at_once=k)
        runs.append((state, outcomes, calls))
    (serial, serial_outcomes, no_calls), (batched, batched_outcomes, calls) = runs
    assert serial.solved_at == serial.generation == 76  # solved well after the start
    assert not no_calls and len(calls) == batched.generation  # K=1: one call per generation
    assert batched.population == serial.population
    assert [g.fitness.values for g in batched.population] == [
        g.fitness.values for g in serial.population
    ]
    assert batched.logbook == serial.logbook and batched_outcomes == serial_outcomes
    assert list(batched.hall_of_fame) == list(serial.hall_of_fame)
    assert (batched.generation, batched.solved_at, batched.best_fitness) == (
        serial.generation, serial.solved_at, serial.best_fitness,
    )  # fmt: skip


def test_rounds_count_one_generation_per_tournament_and_never_exceed_the_maximum():
    toolbox, calls = batched_toolbox_with(lambda g: sum(g) / 81, seed=4, population=16)
    state = SearchState(population=toolbox.population(n=16))
    seen = []

    def keep(*, state, outcome):
        seen.append((state.generation, outcome))

    evolve(state, toolbox, 30, threshold=2.0, on_generation=keep, tournaments_at_once=4)
    assert state.generation == 30 and state.solved_at is None
    assert [generation for generation, _ in seen] == list(range(1, 31))
    assert [record["gen"] for record in state.logbook] == list(range(1, 31))
    # Seven rounds of 4 tournaments, then one of 2: 30 generations, not 32.
    assert [len(genomes) for genomes in calls] == [8] * 7 + [4]
    for genomes in calls:  # a round's contestants are distinct genomes
        assert len({id(genome) for genome in genomes}) == len(genomes)
    for _, outcome in seen:
        assert outcome.winner != outcome.loser and outcome.winner_fitness >= outcome.loser_fitness
    winners = [outcome.winner_fitness for _, outcome in seen]
    assert state.best_fitness == max(winners) == state.hall_of_fame[0].fitness.values[0]
    assert [record["best"] for record in state.logbook] == [
        max(winners[: i + 1]) for i in range(30)
    ]


def test_a_round_stops_at_the_first_tournament_that_reaches_the_threshold():
    """Tournaments after the solving one are not settled: nobody is replaced, and their
    contestants keep the fitness they had (none here)."""
    toolbox, calls = batched_toolbox_with(lambda g: sum(g) / 81, population=8)
    toolbox.register("pick", lambda items, k: list(items)[:k])  # pairs (0, 1), (2, 3), ...
    population = [PathGenome([1] * 9) for _ in range(8)]
    population[2] = PathGenome([9] * 9)  # fitness 1.0, in the second tournament
    state = SearchState(population=population)
    seen = []
    evolve(state, toolbox, max_generations=100, threshold=1.0, tournaments_at_once=4,
           on_generation=lambda *, state, outcome: seen.append(outcome))  # fmt: skip
    assert len(calls) == 1 and len(calls[0]) == 8
    assert state.solved_at == state.generation == len(state.logbook) == len(seen) == 2
    assert seen[-1].winner == 2 and state.best == [9] * 9
    assert [g.fitness.valid for g in state.population] == [True, False, True, False] + [False] * 4
    assert state.population[4:] == [[1] * 9] * 4  # the unsettled tournaments changed nothing


def test_contestants_go_through_map_without_evaluate_together():
    toolbox = toolbox_with(lambda g: sum(g) / 81, seed=5, population=8)
    mapped = []

    def recording_map(fn, items):
        items = list(items)
        mapped.append(len(items))
        return map(fn, items)

    toolbox.register("map", recording_map)
    state = SearchState(population=toolbox.population(n=8))
    evolve(state, toolbox, max_generations=7, threshold=2.0, tournaments_at_once=3)
    assert mapped == [6, 6, 2] and state.generation == 7


def test_mutation_statistics_of_rounds_match_the_serial_tournament():
    """The child of every tournament is the winner with each gene moved with probability
    1/(N·L), whether tournaments run one at a time or 8 at once."""
    rates = {}
    for k in (0, 8):
        toolbox, _ = batched_toolbox_with(lambda g: 0.5, seed=6, population=64, wrap=True)
        state = SearchState(population=toolbox.population(n=64))
        changed = []

        def count(*, state, outcome, changed=changed):
            child, winner = state.population[outcome.loser], state.population[outcome.winner]
            changed.append(sum(a != b for a, b in zip(child, winner, strict=True)))

        evolve(state, toolbox, 2400, threshold=2.0, on_generation=count, tournaments_at_once=k)
        rates[k] = sum(changed) / (9 * len(changed))
    # A gene mutates with probability 1/9 and then moves by U{-2..2}: 4 of 5 shifts change it.
    expected = (1 / 9) * (4 / 5)
    assert abs(rates[0] - expected) < 0.01 and abs(rates[8] - expected) < 0.01
    assert abs(rates[8] - rates[0]) < 0.012


def test_tournaments_at_once_comes_from_the_config_and_is_checked():
    import pytest

    toolbox = make_toolbox(EvoConfig(population=8, tournaments_at_once=2))
    assert toolbox.tournaments_at_once == 2
    toolbox.register("evaluate", lambda genome: (0.0,))
    state = SearchState(population=toolbox.population(n=8))
    evolve(state, toolbox, max_generations=3, threshold=2.0)
    assert state.generation == 3
    with pytest.raises(ValueError, match="tournaments_at_once"):
        EvoConfig(population=8, tournaments_at_once=5)
    with pytest.raises(ValueError, match="tournaments_at_once"):
        EvoConfig(tournaments_at_once=-1)
    with pytest.raises(ValueError, match="tournaments_at_once"):
        evolve(state, toolbox, 10, threshold=2.0, tournaments_at_once=5)
