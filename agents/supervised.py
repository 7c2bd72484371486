"""Supervised training of paths: PathNet's fitness for classification tasks.

Fernando et al. 2017 (arXiv:1701.08734): a genome is evaluated by training its path with SGD for
T minibatches; its fitness is the training accuracy over those minibatches. Only the path's
modules (and the task's own parts of the layers, such as an MoE gate) and the task head receive
gradients; frozen modules are guarded bitwise. Auxiliary losses of the library's layers (MoE
balancing) are added to the classification loss.

:func:`train_path` trains one path (the reference); :func:`train_paths` trains P paths together,
one batched step for all of them, as the paper's parallel workers train the shared library at
the same time (:func:`pathevo.evolution.tournament.evolve` with ``tournaments_at_once``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pathevo.envs.digits import BinaryTask, salt_and_pepper, sample_batch
from pathevo.evolution.operators import genome_to_path
from pathevo.evolution.tournament import SearchState, TournamentOutcome
from pathevo.modules.library import PathLibrary
from pathevo.modules.pruning import PruneTarget, keep_pruned_zero


@dataclass
class SupervisedConfig:
    """How a path is trained during one evaluation."""

    minibatches: int = 50
    """T: minibatches of training per evaluation (the paper's T = 50)."""
    batch_size: int = 16
    """Examples per minibatch (the paper's 16)."""
    learning_rate: float = 0.05
    """SGD step size."""
    noise: float = 0.5
    """Salt-and-pepper noise: probability that an input value is replaced by 0 or 1 (paper: 0.5)."""

    def __post_init__(self) -> None:
        if self.minibatches <= 0 or self.batch_size <= 0:
            raise ValueError("minibatches and batch_size must be positive")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise must lie in [0, 1], got {self.noise}")


def train_path(
    library: PathLibrary,
    head: nn.Module,
    path: torch.Tensor,
    task: BinaryTask,
    cfg: SupervisedConfig,
    keep_zero: Sequence[PruneTarget] = (),
) -> float:
    """Train ``path`` ([L, N]) and ``head`` on ``task`` for T minibatches; the training accuracy.
    Pruned entries of the library targets ``keep_zero`` (with masks) stay exactly 0."""
    optimizer = torch.optim.SGD([*library.parameters(), *head.parameters()], lr=cfg.learning_rate)
    handle = library.guard(optimizer)
    pruned = keep_pruned_zero(keep_zero, optimizer) if keep_zero else None
    correct = torch.zeros((), dtype=torch.long)
    try:
        for _ in range(cfg.minibatches):
            x, y = sample_batch(task, cfg.batch_size, cfg.noise)  # x: [B, D]; y: [B]
            logits = head(library(x, path, task.name))  # [B, 2]
            loss = F.cross_entropy(logits, y)
            aux = library.take_aux_loss()  # MoE layers' balancing loss, if any
            if aux is not None:
                loss = loss + aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += (logits.detach().argmax(1) == y).sum()
    finally:
        handle.remove()
        if pruned is not None:
            pruned.remove()
    return correct.item() / (cfg.minibatches * cfg.batch_size)


def train_paths(
    library: PathLibrary,
    head: nn.Module,
    paths: torch.Tensor,
    task: BinaryTask,
    cfg: SupervisedConfig,
) -> list[float]:
    """Train P paths ([P, L, N]) and ``head`` together on ``task`` for T minibatches; each path's
    training accuracy.

    Every step, each path draws its own minibatch (as :func:`train_path` does) and all P run as
    one population forward (:meth:`PathLibrary.forward_population`). The loss is the sum over
    the paths of each one's mean cross-entropy (and balancing loss), so a module only one path
    uses gets exactly the gradient that path would give it alone, and a module or head shared
    by several paths gets the sum of theirs: one SGD step applies all their updates at once,
    as workers training the shared parameters at the same time would. One path (P = 1) is
    :func:`train_path`: the same minibatches from the same random state, the same updates up
    to float rounding.

    Its steps allocate and free tensors of a few MB; a process that trains many of them should
    keep freed memory (:func:`pathevo.agents.processes.keep_freed_memory`, as the runners do),
    else every step page-faults them in afresh (up to twice its time).
    """
    p, b = paths.shape[0], cfg.batch_size
    # foreach: one update call for the ~60 modules P paths touch (a third off the step's SGD).
    parameters = [*library.parameters(), *head.parameters()]
    optimizer = torch.optim.SGD(parameters, lr=cfg.learning_rate, foreach=True)
    handle = library.guard(optimizer)
    correct = torch.zeros(p, dtype=torch.long, device=task.y.device)
    try:
        for _ in range(cfg.minibatches):
            index = torch.randint(len(task.y), (p, b), device=task.y.device)  # [P, B]
            # One index_select of whole rows (x[index] takes a slower general gather).
            x = task.x.index_select(0, index.flatten()).view(p, b, -1)  # [P, B, D]
            x = salt_and_pepper(x, cfg.noise)
            y = task.y[index]  # [P, B]
            logits = head(library.forward_population(x, paths, task.name))  # [P, B, 2]
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / b
            aux = library.take_aux_loss()  # averaged over the P paths by the layers
            if aux is not None:
                loss = loss + p * aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += (logits.detach().argmax(2) == y).sum(1)
    finally:
        handle.remove()
    return [count / (cfg.minibatches * b) for count in correct.tolist()]


@dataclass
class PathTrainer:
    """Picklable fitness function ``genome -> (accuracy,)`` for any map backend.

    Holds the library and head (put them in shared memory for the process backend) and the task;
    :meth:`trained_parameters` lets the Ray backend send a remote evaluation's training back
    (:class:`pathevo.evolution.ray_backend.TrainingFitness`).
    """

    library: PathLibrary
    head: nn.Module
    task: BinaryTask
    cfg: SupervisedConfig
    layers: int
    active: int
    beside: list[list[int]] | None = None
    """A path ([L][N'] module ids) every genome's path runs beside (A's frozen path, with
    binary_digits' ``--frozen-always-active``); None: the genome's path alone."""

    def __call__(self, genome: Sequence[int]) -> tuple[float]:
        return (train_path(self.library, self.head, self.path(genome), self.task, self.cfg),)

    def evaluate_together(self, genomes: Sequence[Sequence[int]]) -> list[tuple[float]]:
        """The fitness of each genome, their paths trained together (:func:`train_paths`): a
        round's contestants for ``toolbox.evaluate_together``."""
        paths = torch.stack([self.path(genome) for genome in genomes])  # [P, L, N]
        accuracies = train_paths(self.library, self.head, paths, self.task, self.cfg)
        return [(accuracy,) for accuracy in accuracies]

    def path(self, genome: Sequence[int]) -> torch.Tensor:
        """The [L, N] path a genome trains ([L, N + N'] with :attr:`beside`)."""
        path = genome_to_path(genome, self.layers, self.active)
        return path if self.beside is None else torch.cat([path, torch.tensor(self.beside)], 1)

    def trained_parameters(self, genome: Sequence[int]) -> dict[str, nn.Parameter]:
        """What training ``genome``'s path changes — its unfrozen modules (and task parts) and
        the head — by ``library.``/``head.`` state-dict names."""
        return trained_by_name(self.library, self.head, self.path(genome), self.task.name)


def trained_by_name(
    library: PathLibrary, head: nn.Module, path: torch.Tensor, task: str
) -> dict[str, nn.Parameter]:
    """The parameters training ``path`` ([L, N]) for ``task`` changes, by state-dict name."""
    on_path = {id(param) for param in library.path_parameters(path, task)}
    names = {
        f"library.{name}": param
        for name, param in library.named_parameters()
        if id(param) in on_path and param.requires_grad
    }
    return names | {f"head.{name}": param for name, param in head.named_parameters()}


def train_fixed_path(
    state: SearchState,
    evaluate: Callable[[Sequence[int]], tuple[float]],
    max_generations: int,
    threshold: float,
    on_generation: Callable[..., None] | None = None,
    min_generations: int = 0,
) -> SearchState:
    """The fine-tuning control: keep training one fixed path (``state.population[0]``).

    A generation trains it for two evaluations of T minibatches, the compute of one binary
    tournament, so generation counts compare directly with evolution's. ``state.solved_at`` is
    the first generation whose better evaluation reaches ``threshold``; training goes on to
    ``min_generations`` at least.
    """
    genome = state.population[0]
    while state.generation < max_generations and (
        state.solved_at is None or state.generation < min_generations
    ):
        first, second = evaluate(genome)[0], evaluate(genome)[0]
        state.generation += 1
        genome.fitness.values = (max(first, second),)
        state.hall_of_fame.update([genome])
        state.best_fitness = max(state.best_fitness, first, second)
        state.logbook.record(
            gen=state.generation,
            winner=max(first, second),
            loser=min(first, second),
            best=state.best_fitness,
            mean=(first + second) / 2,
        )
        if max(first, second) >= threshold and state.solved_at is None:
            state.solved_at = state.generation
        if on_generation is not None:
            outcome = TournamentOutcome(0, 0, max(first, second), min(first, second))
            on_generation(state=state, outcome=outcome)
    return state
