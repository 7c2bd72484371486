"""Batched supervised training: P paths trained together, each as it would train alone."""

import copy
import random

import torch
from torch import nn

from pathevo.agents.supervised import PathTrainer, SupervisedConfig, train_path, train_paths
from pathevo.envs.digits import BinaryTask
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.toolbox import make_toolbox
from pathevo.evolution.tournament import SearchState, evolve
from pathevo.modules.library import linear_library
from pathevo.modules.moe import moe_layer_factory


def halves_task(examples: int = 200, features: int = 32, seed: int = 0) -> BinaryTask:
    """Class 0 lights the first half of the inputs, class 1 the second: easy even under noise."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (examples,), generator=generator)
    lit = (torch.arange(features) >= features // 2).long() == y.unsqueeze(1)  # [n, D]
    x = lit.float() * (0.7 + 0.3 * torch.rand(examples, features, generator=generator))
    return BinaryTask(name="halves", x=x, y=y)


def parameters_of(*modules: nn.Module) -> list[torch.Tensor]:
    return [param.detach().clone() for module in modules for param in module.parameters()]


def test_one_path_trains_as_train_path():
    """P = 1: the same minibatches from the same random state, the same accuracy, the same
    parameters up to float rounding (a batched matmul against the single path's)."""
    torch.manual_seed(0)
    task, cfg = halves_task(), SupervisedConfig(minibatches=12, batch_size=8)
    library, head = linear_library(32, 8, num_layers=2, num_modules=4), nn.Linear(8, 2)
    twin_library, twin_head = copy.deepcopy(library), copy.deepcopy(head)
    path = torch.tensor([[0, 2], [3, 3]])  # a repeated module counts once in both
    torch.manual_seed(5)
    alone = train_path(library, head, path, task, cfg)
    torch.manual_seed(5)
    (together,) = train_paths(twin_library, twin_head, path.unsqueeze(0), task, cfg)
    assert together == alone
    for ours, theirs in zip(parameters_of(twin_library, twin_head), parameters_of(library, head),
                            strict=True):  # fmt: skip
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_one_path_with_moe_layers_trains_as_train_path():
    """The balancing loss: the layers average it over the paths, train_paths sums it back."""
    torch.manual_seed(0)
    task, cfg = halves_task(), SupervisedConfig(minibatches=6, batch_size=8)
    library = linear_library(32, 8, 2, 4, last_layer=moe_layer_factory(expert_hidden=6, k=2))
    library.add_task(task.name)
    head, twin_library = nn.Linear(8, 2), copy.deepcopy(library)
    twin_head, path = copy.deepcopy(head), torch.tensor([[0, 1], [1, 3]])
    torch.manual_seed(5)
    alone = train_path(library, head, path, task, cfg)
    torch.manual_seed(5)
    assert train_paths(twin_library, twin_head, path.unsqueeze(0), task, cfg) == [alone]
    for ours, theirs in zip(parameters_of(twin_library, twin_head), parameters_of(library, head),
                            strict=True):  # fmt: skip
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_a_module_of_one_path_gets_the_gradient_it_would_get_alone():
    """One step of two paths with no module in common: path 0's minibatch is the one it would
    draw alone (its examples are the first drawn; no noise, whose draws would come after path
    1's examples), and its modules move exactly as in training it alone (the shared head gets
    the sum of both gradients, which the first step's modules do not see)."""
    torch.manual_seed(0)
    task, cfg = halves_task(), SupervisedConfig(minibatches=1, batch_size=8, noise=0.0)
    library, head = linear_library(32, 8, num_layers=2, num_modules=4), nn.Linear(8, 2)
    twin_library, twin_head = copy.deepcopy(library), copy.deepcopy(head)
    paths = torch.tensor([[[0, 1], [0, 1]], [[2, 3], [2, 3]]])  # [P=2, L, N]
    torch.manual_seed(5)
    train_path(library, head, paths[0], task, cfg)
    torch.manual_seed(5)
    train_paths(twin_library, twin_head, paths, task, cfg)
    for layer, twin in zip(library.layers, twin_library.layers, strict=True):
        for kind in ("weights", "biases"):
            for module in (0, 1):
                torch.testing.assert_close(
                    getattr(twin, kind)[module], getattr(layer, kind)[module], rtol=0, atol=1e-6
                )


def test_frozen_modules_stay_bitwise_and_the_others_train():
    torch.manual_seed(1)
    task, cfg = halves_task(), SupervisedConfig(minibatches=10, batch_size=8)
    library, head = linear_library(32, 8, num_layers=2, num_modules=4), nn.Linear(8, 2)
    library.freeze(torch.tensor([[0, 1], [0, 1]]))
    frozen = [library.layers[i].stacked("weights")[:2].clone() for i in range(2)]
    before = [library.layers[i].stacked("weights")[2:].clone() for i in range(2)]
    paths = torch.tensor([[[0, 2], [1, 3]], [[1, 3], [0, 2]], [[0, 1], [0, 1]]])
    accuracies = train_paths(library, head, paths, task, cfg)
    for i in range(2):
        assert torch.equal(library.layers[i].stacked("weights")[:2], frozen[i])
        assert not torch.equal(library.layers[i].stacked("weights")[2:], before[i])
    assert len(accuracies) == 3
    for accuracy in accuracies:  # a count of correct examples over T*B
        assert 0.0 <= accuracy <= 1.0 and (accuracy * 80).is_integer()


def test_batched_tournaments_evolve_a_good_path():
    """Four tournaments at once through PathTrainer.evaluate_together on an easy task."""
    torch.manual_seed(2)
    task = halves_task()
    library, head = linear_library(32, 8, num_layers=2, num_modules=4), nn.Linear(8, 2)
    trainer = PathTrainer(library, head, task, SupervisedConfig(minibatches=10), 2, 2)
    cfg = EvoConfig(layers=2, modules=4, active=2, population=8, tournaments_at_once=4)
    toolbox = make_toolbox(cfg, rng=random.Random(0))
    toolbox.register("evaluate", trainer)
    toolbox.register("evaluate_together", trainer.evaluate_together)
    state = evolve(SearchState(population=toolbox.population(n=8)), toolbox, 24, threshold=0.95)
    assert state.solved_at is not None and state.solved_at <= 24
    assert state.best_fitness >= 0.95 and len(state.logbook) == state.generation
    fitness = trainer.evaluate_together([state.best, state.best])
    assert len(fitness) == 2 and all(len(values) == 1 for values in fitness)
