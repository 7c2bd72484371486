"""Lottery-ticket helpers of ``runners/lottery.py``: what is pruned, masks handed from one
model to another, and the supervised binary image classifier.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis", arXiv:1803.03635 (iterative magnitude
pruning, rewinding to the initial weights, the random-re-initialisation control); Frankle et al.
2020, arXiv:1912.05671 (rewinding to the weights after k steps); Yu et al. 2020,
arXiv:1906.02768 (tickets in reinforcement learning, the random-mask control). The masks
themselves live in :mod:`pathevo.modules.pruning`.

A binary image task (``--env-id digits/3v5``, ``fashion/coat-v-shirt``; :mod:`pathevo.envs.digits`)
trains the agent's own network as a two-class classifier: its policy logits are the class scores
(the value output is unused), a path agent runs one fixed path (the first N modules of every
layer). SGD on minibatches with salt-and-pepper noise, as PathNet's binary tasks (Fernando et al.
2017, arXiv:1701.08734); the "return" of a minibatch is its training accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from pathevo.agents.a3c import A3CNet, WorkerSpec
from pathevo.agents.pathnet_a3c import PathNetA3C, PathNetWorkerSpec
from pathevo.envs.digits import BinaryTask, canonical_task, is_image_task, sample_batch
from pathevo.modules import pruning

Scope = Literal["heads", "network", "library"]
Ranking = Literal["layer", "global"]


@dataclass
class PruneConfig:
    """Which weights iterative magnitude pruning removes, and how they are ranked."""

    scope: Scope = "heads"
    """heads: every linear weight of the policy/value head(s); network: every linear/conv weight
    outside a path library (torso and heads); library: the heads and every module of a path
    agent's library (path agents only)."""
    ranking: Ranking = "layer"
    """layer: prune the fraction in every layer separately (a tiny policy layer is never emptied
    by a larger value layer); global: rank the weights of all targets together."""

    def __post_init__(self) -> None:
        if self.scope not in ("heads", "network", "library"):
            raise ValueError(f"unknown prune scope {self.scope!r}; choose heads, network, library")
        if self.ranking not in ("layer", "global"):
            raise ValueError(f"unknown prune ranking {self.ranking!r}; choose layer or global")


def prune_targets(model: A3CNet | PathNetA3C, scope: Scope) -> list[pruning.PruneTarget]:
    """The weights ``scope`` prunes in ``model`` (path agents: their tasks' heads added)."""
    if scope == "heads":
        return pruning.head_targets(model)
    if scope == "network":
        return pruning.network_targets(model)
    if model.library is None:
        raise ValueError("--prune.scope library needs a path agent (pathnet, …)")
    return pruning.head_targets(model) + pruning.library_targets(model.library)


def keep_zero_worker(
    rank: int, spec: WorkerSpec | PathNetWorkerSpec, *, worker: Callable[..., None]
) -> None:
    """``worker(rank, spec)`` with the shared optimiser hooked in this process so that pruned
    library weights stay exactly 0 (:func:`pathevo.modules.pruning.keep_pruned_zero`: optimiser
    hooks are not pickled; prune-managed head and torso weights need nothing). Pass it as
    ``functools.partial(keep_zero_worker, worker=agent.worker)``."""
    pruning.keep_pruned_zero(spec.a3c.model, spec.a3c.optimizer)
    worker(rank, spec)


# --- supervised binary image tasks --------------------------------------------------------------


@dataclass
class DigitsConfig:
    """The supervised mode (``--env-id digits/3v5``, ``fashion/coat-v-shirt``, …): SGD on
    minibatches of one binary image task."""

    batch_size: int = 16
    """Examples per minibatch (one training step; --steps counts minibatches)."""
    learning_rate: float = 0.05
    """SGD step size."""
    noise: float = 0.5
    """Salt-and-pepper noise: probability that an input value is replaced by 0 or 1."""
    resolution: int | None = None
    """Resize the images to this side (None keeps their own: 8 for digits/, 28 for the
    MNIST-format data sets)."""

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.learning_rate <= 0:
            raise ValueError("digits batch_size and learning_rate must be positive")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"digits noise must lie in [0, 1], got {self.noise}")


def image_task(env_id: str) -> str | None:
    """The canonical id of a binary image task (``fashion/1v7`` -> ``fashion/trouser-v-sneaker``;
    a one-line ValueError for a bad one), ``None`` for an environment id."""
    return canonical_task(env_id) if is_image_task(env_id) else None


def classifier(
    model: A3CNet | PathNetA3C, task: str, active: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x [B, D] -> class scores [B, 2]`` through the agent's network (its ``task_logits``); a
    path agent (one with a ``library``) uses the first ``active`` modules of every layer."""
    path = None
    if model.library is not None:
        path = torch.arange(active).expand(model.library.num_layers, active)  # [L, N]: 0..N-1

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model.task_logits(x, path=path, task=task)  # x: [B, D] -> [B, 2]

    return forward


def train_classifier(
    model: A3CNet | PathNetA3C,
    data: BinaryTask,
    cfg: DigitsConfig,
    steps: int,
    seed: int,
    active: int,
    *,
    on_batch: Callable[..., None],
) -> None:
    """SGD on ``steps`` minibatches; ``on_batch(step=, accuracy=)`` after each."""
    generator = torch.Generator().manual_seed(seed)  # the same minibatches for every condition
    forward = classifier(model, data.name, active)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate)
    handle = pruning.keep_pruned_zero(model, optimizer)  # library targets; heads need nothing
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: more threads only contend (as A3C workers do)
    try:
        for step in range(1, steps + 1):
            x, y = sample_batch(data, cfg.batch_size, cfg.noise, generator)  # x: [B, D]; y: [B]
            logits = forward(x)  # [B, 2]
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            accuracy = float((logits.detach().argmax(1) == y).float().mean())
            on_batch(step=step, accuracy=accuracy)
    finally:
        torch.set_num_threads(threads)
        handle.remove()
