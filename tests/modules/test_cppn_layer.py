"""CPPN-painted path layers inside a PathLibrary: forward, training, freezing, checkpoints."""

from __future__ import annotations

import io
import pickle
import random

import pytest
import torch
from torch import nn

from pathevo.modules.cppn import compile_cppn, random_cppn
from pathevo.modules.cppn_layer import CPPNConv2dLayer, CPPNLinearLayer, cppn_layer_factory
from pathevo.modules.layers import Conv2dModuleLayer, LinearModuleLayer
from pathevo.modules.library import PathLibrary, linear_library
from pathevo.modules.substrate import QUERY_SIZE, conv_weights, grid_positions, linear_weights


def cppn_library(seed: int = 0) -> PathLibrary:
    return PathLibrary(
        [
            CPPNLinearLayer(4, 6, 8, seed=seed, in_shape=(2, 3)),
            CPPNLinearLayer(4, 8, 5, reduce="mean", seed=seed + 100),
        ],
        output_size=5,
    )


def copy_into_plain(library: PathLibrary) -> PathLibrary:
    """Plain module layers holding the same weights as ``library``'s CPPN layers."""
    layers = []
    for layer in library.layers:
        if isinstance(layer, CPPNLinearLayer):
            plain = LinearModuleLayer(
                layer.num_modules, layer.in_features, layer.out_features, layer.reduce
            )
        else:
            plain = Conv2dModuleLayer(
                layer.num_modules, layer.in_channels, layer.out_channels, layer.kernel_size,
                layer.stride, layer.reduce,
            )  # fmt: skip
        with torch.no_grad():
            for m in range(layer.num_modules):
                plain.weights[m].copy_(layer.weights[m])
                plain.biases[m].copy_(layer.biases[m])
        layers.append(plain)
    return PathLibrary(layers, library.output_size)


def test_generated_weights_are_the_cppns_and_seeded():
    layer = CPPNLinearLayer(3, 6, 4, seed=7, in_shape=(2, 3), threshold=0.1, max_weight=2.0)
    for m in range(3):
        assert layer.cppns[m] == random_cppn(QUERY_SIZE, 2, random.Random(7 + m))
        weight, bias = linear_weights(
            compile_cppn(layer.cppns[m]), grid_positions((2, 3)), grid_positions((4,)), 0, 0.1, 2.0
        )
        assert torch.equal(layer.weights[m], weight) and torch.equal(layer.biases[m], bias)
        assert layer.weights[m].abs().max() <= 2.0
    assert not torch.equal(layer.weights[0], layer.weights[1])
    conv = CPPNConv2dLayer(2, 3, 5, 4, stride=2, seed=1)
    weight, bias = conv_weights(compile_cppn(conv.cppns[1]), 3, 5, 4)
    assert torch.equal(conv.weights[1], weight) and torch.equal(conv.biases[1], bias)


def test_linear_library_matches_plain_layers_with_same_weights():
    library = cppn_library()
    plain = copy_into_plain(library)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    path = torch.tensor([[0, 2], [1, 3]])
    assert torch.equal(library(x, path), plain(x, path))
    paths = torch.tensor([[[0, 2], [1, 3]], [[1, 1], [0, 2]], [[3, 0], [3, 3]]])  # repeats too
    assert torch.equal(library.forward_population(x, paths), plain.forward_population(x, paths))


def test_conv_library_matches_plain_layers_with_same_weights():
    library = PathLibrary(
        [CPPNConv2dLayer(3, 2, 4, 3, stride=2, seed=0), CPPNConv2dLayer(3, 4, 4, 2, seed=9)],
        output_size=4 * 2 * 2,
    )
    plain = copy_into_plain(library)
    x = torch.randn(2, 2, 7, 7, generator=torch.Generator().manual_seed(1))
    path = torch.tensor([[0, 1], [2, 2]])
    assert torch.equal(library(x, path), plain(x, path))
    paths = torch.tensor([[[0, 1], [2, 2]], [[2, 0], [1, 0]]])
    assert torch.equal(library.forward_population(x, paths), plain.forward_population(x, paths))


def train(library: PathLibrary, path: torch.Tensor, steps: int, guard: bool = True) -> list[float]:
    torch.manual_seed(0)
    x = torch.rand(32, 6) * 2 - 1
    target = torch.sin(x.sum(1, keepdim=True)).expand(-1, 5) * 0.5  # [32, 5]
    params = [p for p in library.path_parameters(path) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    if guard:
        library.guard(optimizer)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(library(x, path), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_trains_by_gradient():
    library = cppn_library()
    path = torch.tensor([[0, 1], [2, 3]])
    losses = train(library, path, steps=1)
    on_path = {id(p) for p in library.path_parameters(path)}
    for param in library.parameters():
        assert (param.grad is not None) == (id(param) in on_path)
    losses += train(library, path, steps=60)
    assert losses[-1] < 0.1 * losses[0]


def test_frozen_modules_keep_generated_weights_through_adam():
    library = cppn_library()
    first = torch.tensor([[0, 1], [2, 3]])
    library.freeze(first)
    before = [layer.stacked("weights") for layer in library.layers]
    second = torch.tensor([[1, 2], [3, 0]])  # shares a module with ``first`` in both layers
    losses = train(library, second, steps=30)
    assert losses[-1] < losses[0]
    frozen_ids, trained_ids = ([0, 1], [2, 3]), second.tolist()
    for layer, saved, frozen, trained in zip(
        library.layers, before, frozen_ids, trained_ids, strict=True
    ):
        after = layer.stacked("weights")
        for m in range(layer.num_modules):
            if m in frozen:
                assert torch.equal(after[m], saved[m])
                assert torch.equal(layer.weights[m], layer.generated(m)[0])
                with pytest.raises(ValueError, match="frozen"):
                    layer.set_cppn(m, random_cppn(QUERY_SIZE, 2, random.Random(0)))
            elif m in trained:
                assert not torch.equal(after[m], saved[m])  # trained


def test_reset_unfrozen_repaints_from_each_modules_cppn():
    library = cppn_library()
    everything = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])
    train(library, everything, steps=20, guard=False)  # every module moves off its painting
    new_graph = random_cppn(QUERY_SIZE, 4, random.Random(42), hidden=3)
    library.layers[0].set_cppn(3, new_graph, output_pair=1)
    train(library, everything, steps=5, guard=False)
    library.freeze(torch.tensor([[0, 1], [1, 2]]))
    trained = [layer.stacked("weights") for layer in library.layers]
    library.reinit_unfrozen()
    for layer, saved, frozen in zip(library.layers, trained, ([0, 1], [1, 2]), strict=True):
        for m in range(layer.num_modules):
            weight, bias = layer.generated(m)
            if m in frozen:
                assert torch.equal(layer.weights[m], saved[m])
                assert not torch.equal(layer.weights[m], weight)
            else:
                assert torch.equal(layer.weights[m], weight) and torch.equal(layer.biases[m], bias)
    repainted, _ = linear_weights(
        compile_cppn(new_graph), grid_positions((2, 3)), grid_positions((8,)), output_pair=1
    )
    assert torch.equal(library.layers[0].weights[3], repainted)


def test_state_dict_round_trip_restores_graphs():
    library = cppn_library(seed=0)
    graph = random_cppn(QUERY_SIZE, 4, random.Random(5), hidden=4)
    library.layers[1].set_cppn(2, graph, output_pair=1)
    train(library, torch.tensor([[0, 1], [2, 3]]), steps=3)
    library.freeze(torch.tensor([[0, 1], [2, 3]]))
    buffer = io.BytesIO()
    torch.save(library.state_dict(), buffer)
    restored = cppn_library(seed=50)  # other CPPNs, other weights
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))  # weights_only
    for layer, other in zip(library.layers, restored.layers, strict=True):
        assert other.cppns == layer.cppns and other.output_pairs == layer.output_pairs
        assert torch.equal(other.stacked("weights"), layer.stacked("weights"))
        assert torch.equal(other.frozen, layer.frozen)
        for m in range(layer.num_modules):
            assert torch.equal(other.generated(m)[0], layer.generated(m)[0])
    assert restored.layers[1].output_pairs[2] == 1 and restored.layers[1].cppns[2] == graph
    conv = CPPNConv2dLayer(2, 3, 4, 3, seed=0)
    conv_restored = CPPNConv2dLayer(2, 3, 4, 3, seed=1)
    conv_restored.load_state_dict(conv.state_dict())
    assert conv_restored.cppns == conv.cppns
    assert torch.equal(conv_restored.stacked("weights"), conv.stacked("weights"))


def test_pickle_keeps_layers_working():
    library = cppn_library()
    library.layers[0].set_cppn(1, random_cppn(QUERY_SIZE, 2, random.Random(3), hidden=2))
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    path = torch.tensor([[1, 2], [0, 3]])
    restored = pickle.loads(pickle.dumps(library))
    assert torch.equal(restored(x, path), library(x, path))
    assert restored.layers[0].cppns == library.layers[0].cppns
    graph = random_cppn(QUERY_SIZE, 2, random.Random(4))
    restored.layers[0].set_cppn(0, graph)
    library.layers[0].set_cppn(0, graph)
    assert torch.equal(restored.layers[0].weights[0], library.layers[0].weights[0])


def test_set_cppn_validates_and_output_pair_selects_outputs():
    layer = CPPNLinearLayer(2, 3, 2, seed=0)
    with pytest.raises(ValueError, match="inputs"):
        layer.set_cppn(0, random_cppn(5, 2, random.Random(0)))
    with pytest.raises(ValueError, match="output pair"):
        layer.set_cppn(0, random_cppn(QUERY_SIZE, 3, random.Random(0)), output_pair=1)
    with pytest.raises(ValueError, match="not in a layer"):
        layer.set_cppn(2, random_cppn(QUERY_SIZE, 2, random.Random(0)))
    graph = random_cppn(QUERY_SIZE, 4, random.Random(1))
    layer.set_cppn(0, graph, output_pair=1)
    weight, bias = linear_weights(
        compile_cppn(graph), grid_positions((3,)), grid_positions((2,)), output_pair=1
    )
    assert torch.equal(layer.weights[0], weight) and torch.equal(layer.biases[0], bias)
    with pytest.raises(ValueError, match="substrate shape"):
        CPPNLinearLayer(2, 6, 2, in_shape=(2, 2))
    with pytest.raises(ValueError, match="threshold"):
        CPPNLinearLayer(2, 6, 2, threshold=1.0)


def test_layer_factory_builds_a_picklable_library():
    factory = cppn_layer_factory(threshold=0.3, max_weight=1.0, seed=3)
    library = linear_library(6, 8, num_layers=2, num_modules=3, last_layer=factory)
    last = library.layers[-1]
    assert isinstance(last, CPPNLinearLayer) and not isinstance(library.layers[0], CPPNLinearLayer)
    assert last.threshold == 0.3 and last.max_weight == 1.0
    assert last.cppns[0] == random_cppn(QUERY_SIZE, 2, random.Random(3))
    assert last.weights[0].abs().max() <= 1.0
    restored = pickle.loads(pickle.dumps(library))
    x = torch.randn(2, 6)
    path = torch.tensor([[0, 1], [2, 0]])
    assert torch.equal(restored(x, path), library(x, path))
