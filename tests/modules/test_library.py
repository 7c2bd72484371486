"""The module library: path forward, population forward, duplicates, shapes."""

import pytest
import torch
import torch.nn.functional as F

from pathevo.modules import Conv2dModuleLayer, LinearModuleLayer, conv_library, linear_library


def naive_linear(layer: LinearModuleLayer, x: torch.Tensor, ids: list[int]) -> torch.Tensor:
    outputs = [F.relu(F.linear(x, layer.weights[m], layer.biases[m])) for m in sorted(set(ids))]
    total = torch.stack(outputs).sum(0)
    return total / len(outputs) if layer.reduce == "mean" else total


def naive_conv(layer: Conv2dModuleLayer, x: torch.Tensor, ids: list[int]) -> torch.Tensor:
    outputs = [
        F.relu(F.conv2d(x, layer.weights[m], layer.biases[m], stride=layer.stride))
        for m in sorted(set(ids))
    ]
    total = torch.stack(outputs).sum(0)
    return total / len(outputs) if layer.reduce == "mean" else total


@pytest.mark.parametrize("ids", [[0, 3, 7], [2, 2, 5], [4, 4, 4]])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_linear_path_equals_naive_sum_of_active_modules(ids, reduce):
    torch.manual_seed(0)
    layer = LinearModuleLayer(10, 6, 5, reduce=reduce)
    x = torch.randn(4, 6)
    got = layer(x, torch.tensor(ids))
    torch.testing.assert_close(got, naive_linear(layer, x, ids))


@pytest.mark.parametrize("ids", [[1, 4], [3, 3], [0, 2, 0]])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_conv_path_equals_naive_sum_of_active_modules(ids, channels_last, reduce):
    torch.manual_seed(0)
    layer = Conv2dModuleLayer(6, 3, 4, kernel_size=3, stride=2, reduce=reduce)
    x = torch.randn(2, 3, 11, 11)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = layer(x, torch.tensor(ids))
    assert got.shape == (2, 4, 5, 5)
    # channels-last in, channels-last out (the next conv needs no layout change)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(got, naive_conv(layer, x, ids))


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_conv_path_in_bfloat16_autocast_sums_modules_like_float32(reduce):
    """Under bfloat16 autocast the channels-last module sum is a GEMM: same result, rounded."""
    torch.manual_seed(0)
    layer = Conv2dModuleLayer(6, 3, 4, kernel_size=3, stride=2, reduce=reduce)
    x = torch.randn(2, 3, 11, 11).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x, [1, 4, 1, 5])
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.float(), naive_conv(layer, x, [1, 4, 5]), rtol=0.03, atol=0.03)


def test_library_forward_equals_layer_by_layer_naive_computation():
    torch.manual_seed(1)
    library = linear_library(8, 5, num_layers=3, num_modules=4)
    x = torch.randn(7, 8)
    path = torch.tensor([[0, 1], [3, 3], [2, 0]])
    expected = x
    for layer, ids in zip(library.layers, path.tolist(), strict=True):
        expected = naive_linear(layer, expected, ids)
    torch.testing.assert_close(library(x, path), expected)


@pytest.mark.parametrize("shared_input", [True, False])
def test_linear_population_forward_equals_per_path_forward(shared_input):
    torch.manual_seed(2)
    library = linear_library(8, 5, num_layers=3, num_modules=6, last_reduce="mean")
    paths = torch.randint(0, 6, (9, 3, 3))
    paths[0, 1] = torch.tensor([2, 2, 2])  # duplicates count once in population mode too
    x = torch.randn(4, 8)
    inputs = x if shared_input else torch.randn(9, 4, 8)
    got = library.forward_population(inputs, paths)
    per_path = [library(x if shared_input else inputs[p], paths[p]) for p in range(9)]
    torch.testing.assert_close(got, torch.stack(per_path))


@pytest.mark.parametrize("shared_input", [True, False])
def test_conv_population_forward_equals_per_path_forward(shared_input):
    torch.manual_seed(3)
    library = conv_library((2, 20, 20), [(4, 4, 2), (4, 3, 1)], num_modules=5, linear_units=6)
    paths = torch.randint(0, 5, (4, 3, 2))
    x = torch.randn(3, 2, 20, 20)
    inputs = x if shared_input else torch.randn(4, 3, 2, 20, 20)
    got = library.forward_population(inputs, paths)
    per_path = [library(x if shared_input else inputs[p], paths[p]) for p in range(4)]
    assert got.shape == (4, 3, library.output_size)
    torch.testing.assert_close(got, torch.stack(per_path), rtol=1e-5, atol=1e-6)


def test_only_active_modules_get_gradients_so_cost_does_not_grow_with_m():
    torch.manual_seed(4)
    library = linear_library(8, 5, num_layers=2, num_modules=6)
    path = torch.tensor([[1, 4], [0, 0]])
    library(torch.randn(3, 8), path).sum().backward()
    for layer, ids in zip(library.layers, path.tolist(), strict=True):
        with_grad = {m for m in range(6) if layer.weights[m].grad is not None}
        assert with_grad == set(ids)


def test_modules_of_a_layer_share_one_storage():
    library = linear_library(8, 5, num_layers=1, num_modules=6).share_memory()
    weights = library.layers[0].weights
    pointers = {param.untyped_storage().data_ptr() for param in weights}
    assert len(pointers) == 1 and all(param.is_shared() for param in weights)


def test_atari_sized_conv_library_shapes():
    library = conv_library((4, 84, 84), [(8, 8, 4), (8, 4, 2), (8, 3, 1)], 10, linear_units=50)
    path = torch.randint(0, 10, (4, 4))
    assert library(torch.zeros(2, 4, 84, 84), path).shape == (2, 50)
    assert library.modules_per_layer == [10, 10, 10, 10]


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError):
        linear_library(8, 0, 3, 10)
    with pytest.raises(ValueError):
        LinearModuleLayer(0, 3, 3)
    with pytest.raises(ValueError):
        conv_library((1, 5, 5), [(4, 8, 4)], 3)
