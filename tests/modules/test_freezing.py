"""Freezing a path keeps its modules bitwise identical under any later training."""

import pickle

import pytest
import torch
import torch.nn.functional as F

from pathevo.modules import linear_library


def snapshot(library, path):
    return [
        (layer.stacked("weights")[ids], layer.stacked("biases")[ids])
        for layer, ids in zip(library.layers, path, strict=True)
    ]


def train(library, head, optimizer, path, steps=30):
    for _ in range(steps):
        x = torch.randn(16, 8)
        loss = F.cross_entropy(head(library(x, path)), torch.randint(0, 2, (16,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda params: torch.optim.SGD(params, lr=0.5, momentum=0.9, weight_decay=0.1),
        lambda params: torch.optim.Adam(params, lr=0.05),
        lambda params: torch.optim.AdamW(params, lr=0.05, weight_decay=0.5),
        lambda params: torch.optim.RMSprop(params, lr=0.05, alpha=0.99, eps=0.1),
    ],
    ids=["sgd-momentum-decay", "adam", "adamw", "rmsprop"],
)
def test_frozen_modules_bitwise_unchanged_after_training_on_b(make_optimizer):
    torch.manual_seed(0)
    library = linear_library(8, 6, num_layers=3, num_modules=5)
    head = torch.nn.Linear(6, 2)
    optimizer = make_optimizer([*library.parameters(), *head.parameters()])
    library.guard(optimizer)
    path_a = torch.tensor([[0, 1], [2, 3], [4, 0]])
    # Task A builds optimizer state (momentum) on the modules that will be frozen.
    train(library, head, optimizer, path_a)
    library.freeze(path_a)
    frozen = snapshot(library, path_a)
    others_before = library.layers[0].stacked("weights")[2]
    # Task B's path overlaps A's frozen modules and uses free ones.
    path_b = torch.tensor([[0, 2], [2, 4], [4, 1]])
    train(library, head, optimizer, path_b)
    for (weight, bias), (weight_now, bias_now) in zip(
        frozen, snapshot(library, path_a), strict=True
    ):
        assert torch.equal(weight, weight_now)
        assert torch.equal(bias, bias_now)
    assert not torch.equal(others_before, library.layers[0].weights[2])  # free modules learn


def test_frozen_modules_get_no_gradient_even_without_guard():
    torch.manual_seed(1)
    library = linear_library(8, 6, num_layers=2, num_modules=4)
    library.freeze(torch.tensor([[1], [2]]))
    library(torch.randn(5, 8), torch.tensor([[1, 0], [2, 3]])).sum().backward()
    assert library.layers[0].weights[1].grad is None
    assert library.layers[1].weights[2].grad is None
    assert library.layers[0].weights[0].grad.abs().sum() > 0


def test_freezing_survives_state_dict_and_pickling():
    torch.manual_seed(2)
    library = linear_library(8, 6, num_layers=2, num_modules=4)
    path = torch.tensor([[1, 3], [0, 2]])
    library.freeze(path)
    restored = linear_library(8, 6, num_layers=2, num_modules=4)
    restored.load_state_dict(library.state_dict())
    clone = pickle.loads(pickle.dumps(library))
    for copy in (restored, clone):
        optimizer = torch.optim.Adam(copy.parameters(), lr=0.1, weight_decay=1.0)
        copy.guard(optimizer)
        before = snapshot(copy, path)
        train(copy, torch.nn.Linear(6, 2), optimizer, torch.tensor([[1, 0], [2, 0]]), steps=5)
        assert all(
            torch.equal(w, w2) and torch.equal(b, b2)
            for (w, b), (w2, b2) in zip(before, snapshot(copy, path), strict=True)
        )


def test_reinit_unfrozen_keeps_frozen_and_resets_the_rest():
    torch.manual_seed(3)
    library = linear_library(8, 6, num_layers=2, num_modules=4)
    path = torch.tensor([[1], [2]])
    library.freeze(path)
    before = [layer.stacked("weights") for layer in library.layers]
    library.reinit_unfrozen()
    for layer, old, ids in zip(library.layers, before, path.tolist(), strict=True):
        for m in range(4):
            same = torch.equal(layer.weights[m], old[m])
            assert same == (m in ids)
