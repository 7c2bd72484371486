"""The serial binary tournament of supervised PathNet (Fernando et al. 2017, arXiv:1701.08734).

One generation: pick two genomes at random, evaluate each (train it for T minibatches; fitness is
the training accuracy over those minibatches), and overwrite the loser with a mutated copy of the
winner. Evaluation goes through ``toolbox.map`` so the backend decides where it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deap import base, tools

from pathevo.evolution.toolbox import path_genome_from_data, path_genome_to_data


@dataclass
class TournamentOutcome:
    """What one binary tournament did."""

    winner: int
    loser: int
    winner_fitness: float
    loser_fitness: float


@dataclass
class SearchState:
    """Everything needed to continue an evolution where it stopped (picklable)."""

    population: list
    generation: int = 0
    solved_at: int | None = None
    best_fitness: float = float("-inf")
    hall_of_fame: tools.HallOfFame = field(default_factory=lambda: tools.HallOfFame(1))
    logbook: tools.Logbook = field(default_factory=tools.Logbook)

    @property
    def best(self) -> list[int]:
        """The fittest genome seen so far."""
        return list(self.hall_of_fame[0])


def logbook_to_data(logbook: tools.Logbook) -> list[dict[str, Any]]:
    """A logbook's records as plain dicts."""
    return [dict(record) for record in logbook]


def logbook_from_data(records: list[dict[str, Any]]) -> tools.Logbook:
    """The logbook of :func:`logbook_to_data`'s records."""
    logbook = tools.Logbook()
    for record in records:
        logbook.record(**record)
    return logbook


def search_to_data(state: SearchState) -> dict[str, Any]:
    """The search state as plain data (a ``weights_only`` checkpoint holds it): genomes as
    :func:`pathevo.evolution.toolbox.path_genome_to_data` dicts, the logbook as its records."""
    return {
        "population": [path_genome_to_data(genome) for genome in state.population],
        "generation": state.generation,
        "solved_at": state.solved_at,
        "best_fitness": float(state.best_fitness),
        "hall_of_fame": {"maxsize": state.hall_of_fame.maxsize,
                         "items": [path_genome_to_data(g) for g in state.hall_of_fame]},
        "logbook": logbook_to_data(state.logbook),
    }  # fmt: skip


def search_from_data(data: dict[str, Any]) -> SearchState:
    """The search state :func:`search_to_data` stored."""
    hall_of_fame = tools.HallOfFame(data["hall_of_fame"]["maxsize"])
    for item in reversed(data["hall_of_fame"]["items"]):  # worst first: ties keep their order
        hall_of_fame.insert(path_genome_from_data(item))
    return SearchState(
        population=[path_genome_from_data(genome) for genome in data["population"]],
        generation=data["generation"],
        solved_at=data["solved_at"],
        best_fitness=data["best_fitness"],
        hall_of_fame=hall_of_fame,
        logbook=logbook_from_data(data["logbook"]),
    )


def binary_tournament(population: list, toolbox: base.Toolbox) -> TournamentOutcome:
    """One generation of the serial binary tournament; replaces the loser in ``population``."""
    first, second = toolbox.pick(range(len(population)), 2)
    contenders = [population[first], population[second]]
    for genome, fitness in zip(contenders, toolbox.map(toolbox.evaluate, contenders), strict=True):
        genome.fitness.values = fitness
    # Ties go to the first genome, as in the paper's "if fitness >= ..." comparison.
    if contenders[0].fitness.values[0] >= contenders[1].fitness.values[0]:
        winner, loser = first, second
    else:
        winner, loser = second, first
    outcome = TournamentOutcome(
        winner=winner,
        loser=loser,
        winner_fitness=population[winner].fitness.values[0],
        loser_fitness=population[loser].fitness.values[0],
    )
    (child,) = toolbox.mutate(toolbox.clone(population[winner]))
    del child.fitness.values
    population[loser] = child
    return outcome


def evolve(
    state: SearchState,
    toolbox: base.Toolbox,
    max_generations: int,
    threshold: float,
    on_generation: Callable[..., None] | None = None,
) -> SearchState:
    """Run tournaments until a fitness reaches ``threshold`` or ``max_generations`` have run.

    ``on_generation(*, state, outcome)`` is called after every generation (logging, checkpoints).
    ``state.solved_at`` is the 1-based generation at which the threshold was first reached.
    """
    while state.solved_at is None and state.generation < max_generations:
        outcome = binary_tournament(state.population, toolbox)
        state.generation += 1
        evaluated = toolbox.clone(state.population[outcome.winner])
        state.hall_of_fame.update([evaluated])
        state.best_fitness = max(state.best_fitness, outcome.winner_fitness)
        valid = [g.fitness.values[0] for g in state.population if g.fitness.valid]
        state.logbook.record(
            gen=state.generation,
            winner=outcome.winner_fitness,
            loser=outcome.loser_fitness,
            best=state.best_fitness,
            mean=sum(valid) / len(valid),
        )
        if outcome.winner_fitness >= threshold:
            state.solved_at = state.generation
        if on_generation is not None:
            on_generation(state=state, outcome=outcome)
    return state
