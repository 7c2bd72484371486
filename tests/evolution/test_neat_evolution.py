"""NEAT generations in DEAP: a toy CPPN task improves, serially and in spawned processes;
runs reproduce; individuals, population and state pickle; a pickled run resumes exactly."""

import pickle
import random
from functools import partial
from types import SimpleNamespace

import pytest
from neat.nn import FeedForwardNetwork

from pathevo.evolution.backends import map_backend
from pathevo.evolution.neat_config import NeatConfig
from pathevo.evolution.neat_evolution import (
    NeatState,
    current_species,
    initial_state,
    neat_state_from_data,
    neat_state_to_data,
    next_generation,
)
from pathevo.evolution.toolbox import (
    CPPNGenome,
    cppn_individual_from_data,
    cppn_individual_to_data,
    make_neat_toolbox,
)

GRID = [(x / 3, y / 3) for x in range(-3, 4) for y in range(-3, 4)]


def target(x: float, y: float) -> float:
    return abs(x) - 0.5


def evaluate(individual, config) -> tuple[float]:
    """Negative mean squared error of the CPPN against ``target`` on a 7x7 grid."""
    net = FeedForwardNetwork.create(individual.genome, SimpleNamespace(genome_config=config))
    error = sum((net.activate([x, y])[0] - target(x, y)) ** 2 for x, y in GRID)
    return (-error / len(GRID),)


def run(cfg, generations, seed=0, map_fn=map):
    toolbox = make_neat_toolbox(cfg, 2, 1, map_fn, random.Random(seed))
    population, state = toolbox.population(n=cfg.population), initial_state(toolbox)
    history = []
    for _ in range(generations):
        fits = toolbox.map(partial(evaluate, config=toolbox.genome_config), population)
        for individual, fit in zip(population, fits, strict=True):
            individual.fitness.values = fit
        history.append(max(ind.fitness.values[0] for ind in population))
        population, state = next_generation(population, state, toolbox)
    return history, population, state, toolbox


CFG = NeatConfig(population=40, target_species=4)
MEAN = sum(target(x, y) for x, y in GRID) / len(GRID)
BASELINE = -sum((target(x, y) - MEAN) ** 2 for x, y in GRID) / len(GRID)  # a constant CPPN


def summary(state):
    """``NeatState`` with genomes (compared by identity) replaced by their text."""
    species = {
        key: (str(s.representative), s.members, s.fitness, s.best_fitness, s.last_improved)
        for key, s in state.species.items()
    }
    return (state.generation, state.threshold, state.innovation, state.next_node_key,
            state.next_genome_key, state.next_species_key, species)  # fmt: skip


def test_serial_evolution_improves_and_reproduces():
    history, population, state, _ = run(CFG, 25)
    assert history == sorted(history)  # elitism: the best never gets lost
    assert history[-1] > history[0] + 0.1
    assert history[-1] > BASELINE + 0.05
    again, population2, state2, _ = run(CFG, 25)
    assert again == history
    assert [str(i.genome) for i in population] == [str(i.genome) for i in population2]
    assert summary(state2) == summary(state)
    other, *_ = run(CFG, 25, seed=1)
    assert other != history


def test_process_backend_evolves_like_the_serial_one():
    serial, *_ = run(CFG, 10)
    with map_backend("processes", workers=2) as map_fn:
        parallel, population, _, toolbox = run(CFG, 10, map_fn=map_fn)
        refits = list(toolbox.map(partial(evaluate, config=toolbox.genome_config), population))
    assert parallel == serial
    assert refits == [evaluate(ind, toolbox.genome_config) for ind in population]


def test_generation_keeps_size_elites_and_invalidates_offspring():
    _, population, state, toolbox = run(CFG, 3)
    assert len(population) == CFG.population
    assert sum(toolbox.species_sizes(population, state)) == CFG.population
    assert len({ind.genome.key for ind in population}) == CFG.population
    elites = [ind for ind in population if ind.fitness.valid]
    assert 1 <= len(elites) <= len(state.species) * CFG.elitism
    assert all(ind.genome.key < state.next_genome_key for ind in population)
    with pytest.raises(ValueError, match="no fitness"):
        next_generation(population, state, toolbox)


def test_logged_species_are_those_next_generation_uses():
    _, population, state, toolbox = run(CFG, 3)
    for individual in population:
        individual.fitness.values = evaluate(individual, toolbox.genome_config)
    species, _ = current_species(population, state, toolbox)
    sizes = toolbox.species_sizes(population, state)
    assert sizes == [len(s.members) for _, s in sorted(species.items())]
    _, new_state = next_generation(population, state, toolbox)
    assert new_state.species  # survivors keep this generation's members and representatives
    for key, s in new_state.species.items():
        assert s.members == species[key].members
        assert s.representative is species[key].representative


def test_initial_state_without_counters_runs_the_same():
    toolbox = make_neat_toolbox(CFG, 2, 1, rng=random.Random(0))
    population = toolbox.population(n=CFG.population)
    history, final, _ = advance(population, NeatState.initial(CFG), toolbox, 5)
    reference, final_ref, _, _ = run(CFG, 5)
    assert history == reference
    assert [str(i.genome) for i in final] == [str(i.genome) for i in final_ref]


def test_individual_population_and_state_pickle():
    _, population, state, toolbox = run(CFG, 3)
    individual = population[0]
    copy = pickle.loads(pickle.dumps(individual))
    assert isinstance(copy, CPPNGenome)
    assert copy.fitness.values == individual.fitness.values
    assert str(copy.genome) == str(individual.genome)
    restored_pop, restored_state = pickle.loads(pickle.dumps((population, state)))
    assert summary(restored_state) == summary(state)
    assert [str(i.genome) for i in restored_pop] == [str(i.genome) for i in population]
    config = pickle.loads(pickle.dumps(toolbox.genome_config))
    assert config.innovation_tracker.global_counter == state.innovation
    assert evaluate(individual, config) == evaluate(individual, toolbox.genome_config)


def advance(population, state, toolbox, generations):
    fitness = partial(evaluate, config=toolbox.genome_config)
    best = []
    for _ in range(generations):
        for individual in population:
            individual.fitness.values = fitness(individual)
        best.append(max(ind.fitness.values[0] for ind in population))
        population, state = next_generation(population, state, toolbox)
    return best, population, state


def test_pickled_run_resumes_exactly_and_keeps_numbering():
    cfg = NeatConfig(population=30, target_species=3)
    toolbox = make_neat_toolbox(cfg, 2, 1, rng=random.Random(5))
    population, state = toolbox.population(n=cfg.population), initial_state(toolbox)
    _, population, state = advance(population, state, toolbox, 4)
    saved = pickle.dumps((population, state, toolbox.rng))
    best, final_pop, final_state = advance(population, state, toolbox, 4)

    population, state, rng = pickle.loads(saved)
    resumed = make_neat_toolbox(cfg, 2, 1, rng=rng)
    assert resumed.genome_config.innovation_tracker.global_counter == 0  # numbering is in state
    best2, final_pop2, final_state2 = advance(population, state, resumed, 4)
    assert best2 == best
    assert [str(i.genome) for i in final_pop2] == [str(i.genome) for i in final_pop]
    assert summary(final_state2) == summary(final_state)

    new_innovations = {
        cg.innovation
        for ind in final_pop2
        for cg in ind.genome.connections.values()
        if cg.innovation > state.innovation
    }
    old_innovations = {
        cg.innovation for ind in population for cg in ind.genome.connections.values()
    }
    assert new_innovations and not new_innovations & old_innovations
    assert final_state2.innovation >= max(new_innovations)
    new_keys = {ind.genome.key for ind in final_pop2} - {ind.genome.key for ind in population}
    assert new_keys and min(new_keys) >= state.next_genome_key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"population": 1},
        {"target_species": 0},
        {"node_add_prob": 1.5},
        {"weight_mutate_rate": 0.95, "weight_replace_rate": 0.1},
        {"activation_options": ("sin", "wiggle")},
        {"output_activation_options": ()},
        {"population": 4, "target_species": 5},
        {"threshold_step": -0.1},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        NeatConfig(**kwargs)


def weights_only_round_trip(data):
    """``data`` through ``torch.save`` and ``torch.load(weights_only=True)``, as a checkpoint."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(data, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_state_as_plain_data_resumes_exactly_and_keeps_numbering():
    """The checkpoint form (plain data, loaded ``weights_only``) resumes as the pickle does:
    genomes, fitness, species ids, innovation numbers and the rng stream all equal."""
    cfg = NeatConfig(population=30, target_species=3)
    toolbox = make_neat_toolbox(cfg, 2, 1, rng=random.Random(5))
    population, state = toolbox.population(n=cfg.population), initial_state(toolbox)
    _, population, state = advance(population, state, toolbox, 4)
    saved = weights_only_round_trip({
        "population": [cppn_individual_to_data(ind) for ind in population],
        "state": neat_state_to_data(state), "rng": toolbox.rng.getstate(),
    })  # fmt: skip
    best, final_pop, final_state = advance(population, state, toolbox, 4)

    population = [cppn_individual_from_data(d) for d in saved["population"]]
    state = neat_state_from_data(saved["state"])
    resumed = make_neat_toolbox(cfg, 2, 1, rng=random.Random())
    resumed.rng.setstate(saved["rng"])
    best2, final_pop2, final_state2 = advance(population, state, resumed, 4)
    assert best2 == best
    assert [str(i.genome) for i in final_pop2] == [str(i.genome) for i in final_pop]
    assert [i.fitness.values for i in final_pop2] == [i.fitness.values for i in final_pop]
    assert summary(final_state2) == summary(final_state)


def test_neat_state_to_data_and_back_is_exact():
    toolbox = make_neat_toolbox(CFG, 2, 1, rng=random.Random(3))
    _, population, state, _ = run(CFG, 3, seed=3)
    data = weights_only_round_trip(neat_state_to_data(state))
    restored = neat_state_from_data(data)
    assert summary(restored) == summary(state)
    assert neat_state_to_data(restored) == neat_state_to_data(state)
    individual = population[0]
    individual.fitness.values = (0.25,)
    again = cppn_individual_from_data(weights_only_round_trip(cppn_individual_to_data(individual)))
    assert str(again.genome) == str(individual.genome) and again.fitness.values == (0.25,)
    assert toolbox.distance(again.genome, individual.genome) == 0.0
