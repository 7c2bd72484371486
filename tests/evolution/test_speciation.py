"""Speciation by compatibility distance, the threshold steered to a target species count,
stagnation and offspring allocation."""

import random
from functools import partial
from types import SimpleNamespace

from neat.nn import FeedForwardNetwork

from pathevo.evolution.neat_config import NeatConfig
from pathevo.evolution.neat_evolution import current_species, initial_state, next_generation
from pathevo.evolution.speciation import (
    Species,
    adjust_threshold,
    allocate_offspring,
    speciate,
    surviving_species,
    update_stagnation,
)
from pathevo.evolution.toolbox import make_neat_toolbox


def gap(a: float, b: float) -> float:
    return abs(a - b)


def test_speciate_groups_by_distance_and_keeps_old_species():
    points = [0.0, 0.2, 5.0, 0.1, 5.3, 10.0]
    species, next_key = speciate(points, {}, 1.0, gap, generation=0, next_key=0)
    assert {k: s.members for k, s in species.items()} == {0: [0, 1, 3], 1: [2, 4], 2: [5]}
    assert next_key == 3
    moved = [p + 0.4 for p in points]  # the next generation drifted a little
    again, next_key = speciate(moved, species, 1.0, gap, generation=1, next_key=next_key)
    assert {k: sorted(s.members) for k, s in again.items()} == {0: [0, 1, 3], 1: [2, 4], 2: [5]}
    assert [again[k].representative for k in (0, 1, 2)] == [0.4, 5.4, 10.4]  # closest to old
    assert next_key == 3


def test_species_die_out_or_merge_when_incompatible():
    old = {0: Species(0, 0.0, created=0), 1: Species(1, 0.6, created=0), 2: Species(2, 50.0, 0)}
    species, next_key = speciate([0.1, 0.5, 9.0], old, 1.0, gap, generation=3, next_key=3)
    # 1 merges into 0 (its genome is compatible with 0's new representative); 2 is too far.
    assert {k: s.members for k, s in species.items()} == {0: [0, 1], 3: [2]}
    assert species[3].created == 3 and next_key == 4


def test_threshold_moves_towards_the_target():
    assert adjust_threshold(3.0, 2, 5, 0.3, 0.5) == 2.7
    assert adjust_threshold(3.0, 8, 5, 0.3, 0.5) == 3.3
    assert adjust_threshold(3.0, 5, 5, 0.3, 0.5) == 3.0
    assert adjust_threshold(0.6, 1, 5, 0.3, 0.5) == 0.5


def test_allocate_offspring():
    counts = allocate_offspring([1.0, 2.0, 3.0], 20, 2)
    assert sum(counts) == 20 and min(counts) >= 2
    assert counts == sorted(counts) and counts[0] == 2  # the worst gets only the minimum
    assert allocate_offspring([-5.0, -5.0], 7, 2) in ([4, 3], [3, 4])
    assert allocate_offspring([1.0] * 5, 6, 2) == [2, 1, 1, 1, 1]  # minimum unaffordable
    assert sum(allocate_offspring([0.3, 0.1, 0.7, 0.2], 101, 3)) == 101


def test_stagnant_species_lose_offspring_but_the_best_survives():
    species = {k: Species(k, None, created=0, members=[k]) for k in range(3)}
    update_stagnation(species, [1.0, 2.0, 3.0], generation=0)
    assert all(s.last_improved == 0 for s in species.values())
    update_stagnation(species, [1.5, 2.0, 3.0], generation=10)  # only species 0 improved
    assert species[0].last_improved == 10 and species[2].last_improved == 0
    assert surviving_species(species, 10, max_stagnation=5, species_elitism=1) == [2, 0]
    assert surviving_species(species, 10, max_stagnation=5, species_elitism=0) == [0]
    assert surviving_species(species, 10, max_stagnation=20, species_elitism=0) == [2, 1, 0]


def evaluate(individual, config):
    net = FeedForwardNetwork.create(individual.genome, SimpleNamespace(genome_config=config))
    points = [(x / 2, y / 2) for x in range(-2, 3) for y in range(-2, 3)]
    return (-sum((net.activate([x, y])[0] - x * y) ** 2 for x, y in points),)


def evolve(cfg, generations, seed=0):
    toolbox = make_neat_toolbox(cfg, 2, 1, rng=random.Random(seed))
    population, state = toolbox.population(n=cfg.population), initial_state(toolbox)
    fitness = partial(evaluate, config=toolbox.genome_config)
    counts, thresholds = [], []
    for _ in range(generations):
        for individual, fit in zip(population, toolbox.map(fitness, population), strict=True):
            individual.fitness.values = fit
        population, state = next_generation(population, state, toolbox)
        counts.append(len(state.species))
        thresholds.append(state.threshold)
    return counts, thresholds, population, state, toolbox


def test_species_count_approaches_the_target():
    for target in (3, 8):
        cfg = NeatConfig(population=60, target_species=target)
        counts, thresholds, *_ = evolve(cfg, 30)
        late = counts[10:]
        assert abs(sum(late) / len(late) - target) <= 1.5, (target, counts)
        assert min(late) >= 1


def test_stagnant_species_is_removed_in_a_generation():
    cfg = NeatConfig(population=40, target_species=4, max_stagnation=5)
    _, _, population, state, toolbox = evolve(cfg, 8)
    assert len(state.species) >= 2
    fitness = partial(evaluate, config=toolbox.genome_config)
    for individual in population:
        individual.fitness.values = fitness(individual)
    # Speciate as next_generation will, then mark the least fit species as long stagnant.
    species, _ = current_species(population, state, toolbox)
    update_stagnation(species, [ind.fitness.values[0] for ind in population], state.generation)
    worst = min(species, key=lambda k: species[k].fitness)
    best = max(species, key=lambda k: species[k].fitness)
    assert worst in state.species and worst != best
    state.species[worst].best_fitness = float("inf")
    state.species[worst].last_improved = state.generation - 10
    population, new_state = next_generation(population, state, toolbox)
    assert worst not in new_state.species
    assert best in new_state.species
    assert len(population) == cfg.population


def test_species_to_data_and_back_is_exact():
    from pathevo.evolution.speciation import Species, species_from_data, species_to_data

    species = Species(key=3, representative=[1, 2], created=4, members=[0, 5], fitness=0.5,
                      best_fitness=0.75, last_improved=6)  # fmt: skip
    data = species_to_data(species, lambda genome: {"genes": genome})
    assert data["representative"] == {"genes": [1, 2]} and data["members"] == [0, 5]
    assert species_from_data(data, lambda d: d["genes"]) == species
