"""Supervised training of one path: PathNet's fitness for classification tasks.

Fernando et al. 2017 (arXiv:1701.08734): a genome is evaluated by training its path with SGD for
T minibatches; its fitness is the training accuracy over those minibatches. Only the path's
modules (and the task's own parts of the layers, such as an MoE gate) and the task head receive
gradients; frozen modules are guarded bitwise. Auxiliary losses of the library's layers (MoE
balancing) are added to the classification loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pathevo.envs.digits import BinaryTask, sample_batch
from pathevo.evolution.operators import genome_to_path
from pathevo.evolution.tournament import SearchState, TournamentOutcome
from pathevo.modules.library import PathLibrary


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
) -> float:
    """Train ``path`` ([L, N]) and ``head`` on ``task`` for T minibatches; the training accuracy."""
    optimizer = torch.optim.SGD([*library.parameters(), *head.parameters()], lr=cfg.learning_rate)
    handle = library.guard(optimizer)
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
    return correct.item() / (cfg.minibatches * cfg.batch_size)


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

    def __call__(self, genome: Sequence[int]) -> tuple[float]:
        return (train_path(self.library, self.head, self.path(genome), self.task, self.cfg),)

    def path(self, genome: Sequence[int]) -> torch.Tensor:
        """The [L, N] path a genome trains."""
        return genome_to_path(genome, self.layers, self.active)

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
) -> SearchState:
    """The fine-tuning control: keep training one fixed path (``state.population[0]``).

    A generation trains it for two evaluations of T minibatches, the compute of one binary
    tournament, so generation counts compare directly with evolution's. ``state.solved_at`` is
    the first generation whose better evaluation reaches ``threshold``.
    """
    genome = state.population[0]
    while state.solved_at is None and state.generation < max_generations:
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
        if max(first, second) >= threshold:
            state.solved_at = state.generation
        if on_generation is not None:
            outcome = TournamentOutcome(0, 0, max(first, second), min(first, second))
            on_generation(state=state, outcome=outcome)
    return state
