"""The serial binary tournament of supervised PathNet (Fernando et al. 2017, arXiv:1701.08734).

One generation: pick two genomes at random, evaluate each (train it for T minibatches; fitness is
the training accuracy over those minibatches), and overwrite the loser with a mutated copy of the
winner. Evaluation goes through ``toolbox.map`` so the backend decides where it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from deap import base, tools


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
