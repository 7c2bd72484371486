"""Lottery-ticket helpers of ``runners/lottery.py``: what is pruned and at which rate, how each
condition's training starts, and the supervised image classifier (LeNet-300-100 included).

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis", arXiv:1803.03635 (iterative magnitude
pruning, rewinding to the initial weights, the random-re-initialisation control); Frankle et al.
2020, arXiv:1912.05671 (rewinding to the weights after k steps); Yu et al. 2020,
arXiv:1906.02768 (tickets in reinforcement learning, the random-mask control); Vischer et al.
2021, arXiv:2105.01648 (the permuted-weights control, and the random mask re-initialised). The
masks themselves live in :mod:`pathevo.modules.pruning`.

A binary image task (``--env-id digits/3v5``, ``fashion/coat-v-shirt``; :mod:`pathevo.envs.digits`)
trains the agent's own network as a two-class classifier: its policy logits are the class scores
(the value output is unused), a path agent runs one fixed path (the first N modules of every
layer). SGD on minibatches with salt-and-pepper noise, as PathNet's binary tasks (Fernando et al.
2017, arXiv:1701.08734); the "return" of a minibatch is its training accuracy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from pathevo.agents.a3c import A3CNet, WorkerSpec
from pathevo.agents.continual import split_task
from pathevo.agents.learner import LEARNER_WRAPPERS
from pathevo.agents.pathnet_a3c import PathNetA3C, PathNetWorkerSpec
from pathevo.agents.registry import Agent, register_agent
from pathevo.envs.digits import (
    BinaryTask,
    canonical_task,
    is_all_classes_task,
    is_image_task,
    make_task,
    sample_batch,
)
from pathevo.modules import pruning
from pathevo.modules.lenet import LeNet

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


def prune_fractions(
    model: nn.Module, targets: Sequence[pruning.PruneTarget], hidden: float, output: float
) -> list[float]:
    """The fraction of each target's remaining weights a round prunes: ``output`` for the
    output layers (those :func:`pathevo.modules.pruning.head_targets` finds: policy/value or a
    classifier's last layer), ``hidden`` for every other target."""
    outputs = {(id(module), name) for module, name in pruning.head_targets(model)}
    return [output if (id(module), name) in outputs else hidden for module, name in targets]


def keep_zero_worker(
    rank: int, spec: WorkerSpec | PathNetWorkerSpec, *, worker: Callable[..., None]
) -> None:
    """``worker(rank, spec)`` with the shared optimiser hooked in this process so that pruned
    library weights stay exactly 0 (:func:`pathevo.modules.pruning.keep_pruned_zero`: optimiser
    hooks are not pickled; prune-managed head and torso weights need nothing). Pass it as
    ``functools.partial(keep_zero_worker, worker=agent.worker)``."""
    pruning.keep_pruned_zero(spec.a3c.model, spec.a3c.optimizer)
    worker(rank, spec)


LEARNER_WRAPPERS.add(keep_zero_worker)  # the learner mode hooks its own optimiser alike


# --- how each condition of a round starts -------------------------------------------------------


class ConditionStart(Protocol):
    """Set a condition's mask and weights on ``targets``, which hold the round's magnitude mask
    and the rewound weights: ``rewound`` are those weights (a snapshot), ``fresh()`` a fresh draw
    from the network's own initialisers, ``seed`` the round's seed for any random draw."""

    def __call__(
        self, *, targets: list[pruning.PruneTarget], rewound: list[torch.Tensor],
        fresh: Callable[[], list[torch.Tensor]], seed: int,
    ) -> None: ...  # fmt: skip


def ticket(*, targets: list[pruning.PruneTarget], rewound: list[torch.Tensor],
           fresh: Callable[[], list[torch.Tensor]], seed: int) -> None:  # fmt: skip
    """The winning ticket: the magnitude mask, the survivors at their rewound values."""
    pruning.rewind(targets, rewound)


def reinit(*, targets: list[pruning.PruneTarget], rewound: list[torch.Tensor],
           fresh: Callable[[], list[torch.Tensor]], seed: int) -> None:  # fmt: skip
    """The magnitude mask, the survivors a fresh draw from the network's own initialisers (the
    policy layer's N(0, 0.01²) stays that: kaiming-uniform everywhere would be a 7x larger
    policy init than the ticket's, which confounds the control)."""
    pruning.rewind(targets, fresh())


def random_mask(*, targets: list[pruning.PruneTarget], rewound: list[torch.Tensor],
                fresh: Callable[[], list[torch.Tensor]], seed: int) -> None:  # fmt: skip
    """A random mask pruning as many weights in every layer, the survivors rewound."""
    pruning.random_masks(targets, seed)
    pruning.rewind(targets, rewound)


def permuted(*, targets: list[pruning.PruneTarget], rewound: list[torch.Tensor],
             fresh: Callable[[], list[torch.Tensor]], seed: int) -> None:  # fmt: skip
    """Vischer et al.'s control: the magnitude mask, the rewound survivors' values shuffled
    among the surviving positions of their layer."""
    pruning.rewind(targets, rewound)
    pruning.permute_survivors(targets, seed)


def random_reinit(*, targets: list[pruning.PruneTarget], rewound: list[torch.Tensor],
                  fresh: Callable[[], list[torch.Tensor]], seed: int) -> None:  # fmt: skip
    """Vischer et al.'s fourth condition: a random mask (as ``random_mask``), the survivors a
    fresh draw (as ``reinit``)."""
    pruning.random_masks(targets, seed)
    pruning.rewind(targets, fresh())


CONDITION_STARTS: dict[str, ConditionStart] = {
    "ticket": ticket, "reinit": reinit, "random_mask": random_mask, "permuted": permuted,
    "random_reinit": random_reinit,
}  # fmt: skip
"""Every condition a round can train, by name (``--conditions``); ``ticket`` is the one the
next round prunes further."""


# --- supervised image tasks --------------------------------------------------------------------

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
}
"""The classifier's optimiser by name: ``OPTIMIZERS[name](parameters, lr=…)``."""


@dataclass
class DigitsConfig:
    """The supervised mode (``--env-id digits/3v5``, ``fashion/coat-v-shirt``, ``fashion/all``,
    …): minibatch training of one image classification task."""

    batch_size: int = 16
    """Examples per minibatch (one training step; --steps counts minibatches)."""
    learning_rate: float = 0.05
    """The optimiser's step size."""
    optimizer: str = "sgd"
    """sgd or adam (Frankle & Carbin's LeNet: adam at 1.2e-3)."""
    noise: float = 0.5
    """Salt-and-pepper noise: probability that an input value is replaced by 0 or 1."""
    resolution: int | None = None
    """Resize the images to this side (None keeps their own: 8 for digits/, 28 for the
    MNIST-format data sets)."""
    validation: float = 1 / 12
    """Share of the training split held out for validation (the same examples in every run):
    Frankle & Carbin's 5,000 of MNIST's 60,000."""
    eval_every: int = 100
    """Minibatches between validation-loss evaluations (and at the last one): the
    early-stopping iteration's resolution (the paper's 100)."""

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.learning_rate <= 0 or self.eval_every <= 0:
            raise ValueError("digits batch_size, learning_rate and eval_every must be positive")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"digits noise must lie in [0, 1], got {self.noise}")
        if not 0.0 < self.validation < 1.0:
            raise ValueError(f"digits validation must lie in (0, 1), got {self.validation}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown digits optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}"
            )


def image_task(env_id: str) -> str | None:
    """The canonical id of an image task (``fashion/1v7`` -> ``fashion/trouser-v-sneaker``;
    ``fashion/all`` as it is; a one-line ValueError for a bad one), ``None`` for an environment
    id."""
    if not is_image_task(env_id):
        return None
    return env_id if is_all_classes_task(env_id) else canonical_task(env_id)


@dataclass
class ImageSplits:
    """One image task's training, validation and test examples (:func:`image_splits`)."""

    train: BinaryTask
    validation: BinaryTask
    test: BinaryTask

    @property
    def classes(self) -> int:
        return self.train.classes


VALIDATION_SEED = 0
"""The validation examples are the same in every run and condition."""


def image_splits(
    env_id: str, data_dir: str | None, resolution: int | None, validation: float
) -> ImageSplits:
    """The task's training split less a fixed ``validation`` share, that share, and its test
    split (scikit-learn's digits: every fifth image; the IDX sets: their t10k files)."""
    train, held_out = split_task(make_task(env_id, data_dir, resolution), validation,
                                 VALIDATION_SEED)  # fmt: skip
    return ImageSplits(train, held_out, make_task(env_id, data_dir, resolution, split="test"))


def classifier(model: nn.Module, task: str, active: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x [B, D] -> class scores [B, C]`` through the network's ``task_logits``; a path agent
    (one with a ``library``) uses the first ``active`` modules of every layer."""
    path = None
    if model.library is not None:
        path = torch.arange(active).expand(model.library.num_layers, active)  # [L, N]: 0..N-1

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model.task_logits(x, path=path, task=task)  # x: [B, D] -> [B, C]

    return forward


@torch.no_grad()
def evaluate(
    forward: Callable[[torch.Tensor], torch.Tensor], task: BinaryTask
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy over every example of ``task``, without noise."""
    logits = forward(task.x)  # [n, C]
    loss = float(F.cross_entropy(logits, task.y))
    return loss, float((logits.argmax(1) == task.y).float().mean())


def train_classifier(
    model: nn.Module,
    data: ImageSplits,
    cfg: DigitsConfig,
    start: int,
    end: int,
    seed: int,
    active: int,
    *,
    on_batch: Callable[..., None],
) -> dict[str, Any]:
    """Train on minibatches ``start + 1`` … ``end`` (``on_batch(step=, accuracy=)`` after each,
    the step counted from 0 at the dense network's start), evaluating the validation loss every
    ``cfg.eval_every`` steps and at the last.

    Returns ``early_stop_step`` (the step of minimum validation loss, Frankle & Carbin's
    early-stopping iteration), ``validation_loss`` there, ``test_accuracy`` there and
    ``final_test_accuracy`` at ``end``; the model keeps its final weights.
    """
    generator = torch.Generator().manual_seed(seed)  # the same minibatches for every condition
    forward = classifier(model, data.train.name, active)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.learning_rate)
    handle = pruning.keep_pruned_zero(model, optimizer)  # library targets; heads need nothing
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small network: more threads only contend (as A3C workers do)
    best: dict[str, Any] = {"early_stop_step": end, "validation_loss": math.inf, "state": None}
    try:
        for step in range(start + 1, end + 1):
            x, y = sample_batch(data.train, cfg.batch_size, cfg.noise, generator)  # x: [B, D]
            logits = forward(x)  # [B, C]
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            accuracy = float((logits.detach().argmax(1) == y).float().mean())
            on_batch(step=step, accuracy=accuracy)
            if step % cfg.eval_every == 0 or step == end:
                validation_loss, _ = evaluate(forward, data.validation)
                if validation_loss < best["validation_loss"]:  # the earliest minimum wins ties
                    best.update(early_stop_step=step, validation_loss=validation_loss,
                                state=copy.deepcopy(model.state_dict()))  # fmt: skip
        final_test_accuracy = evaluate(forward, data.test)[1]
        final = copy.deepcopy(model.state_dict())
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        test_accuracy = evaluate(forward, data.test)[1]
        model.load_state_dict(final)
    finally:
        torch.set_num_threads(threads)
        handle.remove()
    return {"early_stop_step": best["early_stop_step"], "validation_loss": best["validation_loss"],
            "test_accuracy": test_accuracy, "final_test_accuracy": final_test_accuracy}  # fmt: skip


# --- LeNet-300-100, the network of Frankle & Carbin's first experiment --------------------------

LENET_DEFAULTS = {
    "steps": 20_000,
    "prune.scope": "network", "prune_fraction": 0.2, "output_prune_fraction": 0.1,
    "digits.optimizer": "adam", "digits.learning_rate": 1.2e-3, "digits.batch_size": 60,
    "digits.noise": 0.0,
}  # fmt: skip
"""Frankle & Carbin 2019, §2 and Figure 2: Adam at 1.2e-3, minibatches of 60, 20% of each
hidden layer and 10% of the output layer pruned a round, every layer pruned (clean inputs). Their
50k iterations are ``--steps 50000``; the default is CPU-sized (docs/lottery.md)."""


def _lenet(s: Any, obs_shape: tuple[int, ...], num_actions: int) -> nn.Module:
    """LeNet-300-100 for flattened images of ``obs_shape`` and ``num_actions`` classes."""
    del s  # the paper's architecture: nothing to set
    return LeNet(obs_shape[0], num_actions)


register_agent(
    Agent(
        "lenet", "LeNet-300-100, a fully connected classifier (Frankle & Carbin 2019): image "
        "tasks of the lottery runner only", _lenet, train_classifier, False, "supervised",
        defaults=LENET_DEFAULTS,
    )
)  # fmt: skip
