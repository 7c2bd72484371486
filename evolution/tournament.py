"""The binary tournament of supervised PathNet (Fernando et al. 2017, arXiv:1701.08734).

One generation: pick two genomes at random, evaluate each (train it for T minibatches; fitness is
the training accuracy over those minibatches), and overwrite the loser with a mutated copy of the
winner. Evaluation goes through ``toolbox.map`` so the backend decides where it runs.

The paper runs its tournaments in parallel workers that train a shared library at the same time.
:func:`evolve` can do the same in one process (``tournaments_at_once`` K >= 1): a round picks 2K
distinct genomes, trains all of them together in one call (``toolbox.evaluate_together``, e.g.
:meth:`pathevo.agents.supervised.PathTrainer.evaluate_together`, which batches their paths),
then settles the K tournaments one after the other, each still one generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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
    fitnesses = list(toolbox.map(toolbox.evaluate, contenders))
    return settle(population, toolbox, (first, second), fitnesses)


def settle(
    population: list,
    toolbox: base.Toolbox,
    pair: tuple[int, int],
    fitnesses: Sequence[tuple[float, ...]],
) -> TournamentOutcome:
    """Give the two evaluated contestants ``pair`` their ``fitnesses`` and overwrite the loser
    with a mutated copy of the winner (ties go to the first, as in the paper's "if fitness >=
    ..." comparison)."""
    first, second = pair
    population[first].fitness.values, population[second].fitness.values = fitnesses
    if population[first].fitness.values[0] >= population[second].fitness.values[0]:
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


def binary_tournaments(
    population: list, toolbox: base.Toolbox, count: int
) -> Iterator[TournamentOutcome]:
    """``count`` binary tournaments whose contestants are evaluated together; settled one at a
    time, as the caller asks for the next outcome.

    The 2·``count`` contestants are distinct genomes (``toolbox.pick``, paired in order). They
    are evaluated in one call of ``toolbox.evaluate_together(genomes) -> [(fitness,), ...]``
    where the toolbox has it (one batched training), else through
    ``toolbox.map(toolbox.evaluate, genomes)`` (a pool backend runs them in parallel). Then each
    tournament is settled (:func:`settle`) in order; a caller that stops early (the threshold
    is reached) leaves the later tournaments unsettled: their genomes keep their old fitness and
    nobody is replaced.
    """
    picks = toolbox.pick(range(len(population)), 2 * count)
    contestants = [population[index] for index in picks]
    if hasattr(toolbox, "evaluate_together"):
        fitnesses = list(toolbox.evaluate_together(contestants))
    else:
        fitnesses = list(toolbox.map(toolbox.evaluate, contestants))
    if len(fitnesses) != len(contestants):
        raise ValueError(f"{len(contestants)} contestants were evaluated into {len(fitnesses)}")
    for index in range(0, 2 * count, 2):
        yield settle(
            population, toolbox, (picks[index], picks[index + 1]), fitnesses[index : index + 2]
        )


def evolve(
    state: SearchState,
    toolbox: base.Toolbox,
    max_generations: int,
    threshold: float,
    on_generation: Callable[..., None] | None = None,
    min_generations: int = 0,
    *,
    tournaments_at_once: int | None = None,
) -> SearchState:
    """Run tournaments until a fitness reaches ``threshold`` (and at least ``min_generations``
    have run) or ``max_generations`` have run.

    ``on_generation(*, state, outcome)`` is called after every generation (logging, checkpoints).
    ``state.solved_at`` is the 1-based generation at which the threshold was first reached.

    ``tournaments_at_once`` K (default: ``toolbox.tournaments_at_once``, which
    :func:`pathevo.evolution.toolbox.make_toolbox` sets from
    :attr:`pathevo.evolution.config.EvoConfig.tournaments_at_once`; 0 without it):

    - 0: the paper's serial tournament, one after the other (:func:`binary_tournament`).
    - K >= 1: rounds of K tournaments (:func:`binary_tournaments`) whose 2K distinct contestants
      are evaluated together. What changes: contestants of one round train concurrently (with
      :meth:`pathevo.agents.supervised.PathTrainer.evaluate_together`, every step sums their
      gradients on shared modules and the head, as the paper's parallel workers do), a genome
      takes part in at most one tournament of a round, and a child competes from the next round
      on. What does not: a generation is one tournament — settled, mutated, counted, logged,
      entered in the hall of fame and reported to ``on_generation`` one at a time, in order —
      and evolution stops at the first tournament that ends the search (``threshold`` reached,
      ``min_generations`` run); the last round is shortened so that ``max_generations`` is never
      exceeded. With K = 1 and a deterministic evaluation this is the serial tournament exactly.
      A run resumed from a checkpoint taken within a round starts a new round there (its
      unsettled tournaments are not replayed).
    """
    if tournaments_at_once is None:
        tournaments_at_once = getattr(toolbox, "tournaments_at_once", 0)
    if not 0 <= 2 * tournaments_at_once <= len(state.population):
        raise ValueError(
            f"tournaments_at_once must lie in [0, population / 2 = {len(state.population) // 2}]"
            f", got {tournaments_at_once}"
        )

    def done() -> bool:
        if state.generation >= max_generations:
            return True
        return state.solved_at is not None and state.generation >= min_generations

    while not done():
        outcomes: Iterable[TournamentOutcome]
        if tournaments_at_once == 0:
            outcomes = [binary_tournament(state.population, toolbox)]
        else:
            count = min(tournaments_at_once, max_generations - state.generation)
            outcomes = binary_tournaments(state.population, toolbox, count)
        for outcome in outcomes:
            record(state, toolbox, outcome, threshold)
            if on_generation is not None:
                on_generation(state=state, outcome=outcome)
            if done():
                break
    return state


def record(
    state: SearchState, toolbox: base.Toolbox, outcome: TournamentOutcome, threshold: float
) -> None:
    """Count one settled tournament as a generation: hall of fame, best fitness, a logbook
    record, and ``solved_at`` if its winner reached ``threshold``."""
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
    if outcome.winner_fitness >= threshold and state.solved_at is None:
        state.solved_at = state.generation
