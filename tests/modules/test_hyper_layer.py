"""The static-hypernetwork layer kind: tiling, O(N) generation, training, freezing, storage."""

from __future__ import annotations

import io
import math
import multiprocessing
import pickle

import pytest
import torch
import torch.nn.functional as F

from pathevo.agents.hyper_agents import HyperConfig
from pathevo.agents.registry import layer_kind
from pathevo.modules.hyper_layer import (
    HyperConv2dLayer,
    HyperLinearLayer,
    HyperModuleLayer,
    hyper_layer_factory,
)
from pathevo.modules.layers import LinearModuleLayer
from pathevo.modules.library import PathLibrary, linear_library


def small_layer(**overrides) -> HyperLinearLayer:
    torch.manual_seed(0)
    settings = dict(z_dim=5, hidden=6, out_tile=4, in_tile=3)
    settings.update(overrides)
    return HyperLinearLayer(6, 7, 10, **settings)  # in 7, out 10: 3 x 3 tiles, cropped


def naive_linear(layer: HyperLinearLayer, x: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Module by module: relu(x Kᵀ + b) of each distinct module, summed (or averaged)."""
    unique = list(dict.fromkeys(ids))
    outputs = [torch.relu(x @ layer.generate([m])[0].T + layer.biases[m]) for m in unique]
    total = sum(outputs)
    return total / len(unique) if layer.reduce == "mean" else total


class GeneratorCalls:
    """Counts the embeddings the layer's generator is asked to expand."""

    def __init__(self, layer: HyperModuleLayer) -> None:
        self.calls: list[tuple[int, ...]] = []
        layer.generator.register_forward_hook(self._record)

    def _record(self, _module, inputs, _output) -> None:
        self.calls.append(tuple(inputs[0].shape))


def test_tiling_shapes_and_each_tile_comes_from_its_own_embedding() -> None:
    layer = small_layer()
    assert (layer.tiles_out, layer.tiles_in, layer.num_tiles) == (3, 3, 9)
    assert layer.z[0].shape == (9, 5) and layer.biases[0].shape == (10,)
    kernel = layer.generate([2, 4])
    assert kernel.shape == (2, 10, 7)
    with torch.no_grad():
        for index, m in enumerate([2, 4]):
            for r in range(3):
                for c in range(3):
                    tile = layer.generator(layer.z[m][r * 3 + c])[..., 0]  # [out_tile, in_tile]
                    block = kernel[index, r * 4 : (r + 1) * 4, c * 3 : (c + 1) * 3]
                    torch.testing.assert_close(block, tile[: block.shape[0], : block.shape[1]])
        # Moving one embedding moves its own tile and nothing else.
        before = layer.generate([2])[0].clone()
        layer.z[2][1 * 3 + 2] += 1.0  # tile (r=1, c=2): rows 4..7, columns 6..6
        changed = (layer.generate([2])[0] != before).nonzero()
        assert changed[:, 0].min() >= 4 and changed[:, 0].max() <= 7
        assert set(changed[:, 1].tolist()) == {6}


def test_tiles_larger_than_the_kernel_are_clipped() -> None:
    layer = HyperLinearLayer(2, 5, 3, z_dim=4, hidden=4, out_tile=16, in_tile=16)
    assert (layer.out_tile, layer.in_tile, layer.num_tiles) == (3, 5, 1)
    assert layer.generate([0, 1]).shape == (2, 3, 5)


def test_a_modules_weights_depend_only_on_its_embeddings_and_the_generator() -> None:
    layer = small_layer()
    with torch.no_grad():
        kernel_0 = layer.generate([0])[0].clone()
        layer.z[3].normal_()  # another module's embeddings
        layer.biases[0].add_(1.0)  # its bias is no part of the weights
        torch.testing.assert_close(layer.generate([0])[0], kernel_0, rtol=0, atol=0)
        layer.z[1].copy_(layer.z[0])  # same embeddings, same generator: same weights
        torch.testing.assert_close(layer.generate([1])[0], kernel_0)
        other = small_layer()
        other.generator.load_state_dict(layer.generator.state_dict())
        other.z[5].copy_(layer.z[0])
        torch.testing.assert_close(other.generate([5])[0], kernel_0)


def test_initial_weights_have_nn_linear_scale() -> None:
    torch.manual_seed(0)
    layer = HyperLinearLayer(8, 64, 20)
    generated = layer.generate(list(range(8)))
    expected = 1 / math.sqrt(3 * 64)  # std of nn.Linear's U(-1/sqrt(in), 1/sqrt(in))
    assert abs(generated.std().item() / expected - 1) < 0.2
    assert abs(generated.mean().item()) < 0.2 * expected
    biases = layer.stacked("biases")
    assert biases.abs().max() <= 1 / math.sqrt(64)


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("ids", [[0, 3, 5], [2, 2, 4], [1]])
def test_forward_equals_the_naive_sum_of_modules(ids, reduce) -> None:
    layer = small_layer()
    layer.reduce = reduce
    x = torch.randn(9, 7)
    torch.testing.assert_close(layer(x, ids), naive_linear(layer, x, ids))


@pytest.mark.parametrize("shared_input", [True, False])
def test_forward_population_equals_each_path(shared_input) -> None:
    layer = small_layer()
    rows = [[0, 1, 2], [5, 5, 3], [3, 0, 4]]
    x = torch.randn(8, 7) if shared_input else torch.randn(3, 8, 7)
    population = layer.forward_population(x, rows)
    for p, row in enumerate(rows):
        torch.testing.assert_close(population[p], layer(x if shared_input else x[p], row))


def test_generation_is_o_of_n_only_the_paths_modules() -> None:
    layer = small_layer()
    calls = GeneratorCalls(layer)
    x = torch.randn(4, 7)
    layer(x, [4, 1, 4]).sum().backward()
    assert calls.calls == [(2, 9, 5)]  # one call: the 2 distinct modules' 9 embeddings
    with_grad = [m for m in range(6) if layer.z[m].grad is not None]
    assert with_grad == [1, 4]
    assert all(layer.biases[m].grad is None for m in (0, 2, 3, 5))
    assert all(param.grad is not None for param in layer.generator.parameters())
    calls.calls.clear()
    layer.forward_population(x, [[0, 1], [1, 3]])
    assert calls.calls == [(3, 9, 5)]  # each distinct module of the population once
    names = {id(p) for p in layer.path_parameters([4, 1, 4])}
    expected = [layer.z[1], layer.biases[1], layer.z[4], layer.biases[4]]
    assert names == {id(p) for p in [*expected, *layer.generator.parameters()]}


def two_class_problem(n: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ U[-1, 1]^6; the class is whether x0 and x1 have the same sign (XOR: not linear)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 6, generator=g) * 2 - 1
    return x, ((x[:, 0] * x[:, 1]) > 0).long()


def test_a_library_with_a_hyper_last_layer_learns_a_two_class_problem() -> None:
    torch.manual_seed(0)
    library = linear_library(6, 24, 2, 5, last_layer=hyper_layer_factory())
    head = torch.nn.Linear(24, 2)
    path = torch.tensor([[0, 2], [1, 3]])
    x, y = two_class_problem()
    optimizer = torch.optim.SGD([*library.path_parameters(path), *head.parameters()], lr=0.1)
    losses = []
    for step in range(400):
        batch = torch.arange(step * 32, (step + 1) * 32) % len(x)
        loss = F.cross_entropy(head(library(x[batch], path)), y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    accuracy = (head(library(x, path)).argmax(1) == y).float().mean().item()
    assert sum(losses[-40:]) / 40 < 0.5 * sum(losses[:40]) / 40
    assert accuracy > 0.9, accuracy


def trained_library(seed: int = 0) -> tuple[PathLibrary, torch.Tensor, torch.Tensor]:
    """A two-layer library (plain, then hyper) and two overlapping paths."""
    torch.manual_seed(seed)
    library = linear_library(6, 12, 2, 6, last_layer=hyper_layer_factory(8, 8, 5, 4))
    path_a = torch.tensor([[0, 1], [0, 2]])
    path_b = torch.tensor([[1, 3], [2, 4]])  # shares a frozen module in each layer
    return library, path_a, path_b


def train(library: PathLibrary, path: torch.Tensor, steps: int, seed: int = 1) -> None:
    x, y = two_class_problem(seed=seed)
    optimizer = torch.optim.Adam(library.parameters(), lr=0.01, weight_decay=0.01)
    handle = library.guard(optimizer)
    for step in range(steps):
        batch = torch.arange(step * 16, (step + 1) * 16) % len(x)
        loss = F.cross_entropy(library(x[batch], path)[:, :2], y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    handle.remove()


def test_frozen_modules_stay_bitwise_while_other_modules_and_the_generator_train() -> None:
    library, path_a, path_b = trained_library()
    hyper = library.layers[-1]
    train(library, path_a, 20)
    library.freeze(path_a)
    x = torch.randn(10, 6)
    out_a = library(x, path_a).detach().clone()
    kernels_a = hyper.kernels([0, 2]).detach().clone()
    generator = [p.detach().clone() for p in hyper.generator.parameters()]
    z_b = hyper.z[4].detach().clone()
    train(library, path_b, 100)
    assert not torch.equal(hyper.generator.w_in, generator[0])  # the generator kept training
    assert not torch.equal(hyper.z[4], z_b)
    assert torch.equal(hyper.kernels([0, 2]), kernels_a)
    assert torch.equal(library(x, path_a), out_a)
    # The cache is what the forward uses: regenerating from the moved generator would differ.
    assert not torch.equal(hyper.generate([0, 2]), kernels_a)
    # Freezing again (a later task's path through the same modules) keeps the first cache.
    library.freeze(torch.tensor([[0, 1], [2, 5]]))
    assert torch.equal(library(x, path_a), out_a)


@pytest.mark.parametrize("reset_generator", [False, True])
def test_reinit_keeps_frozen_outputs_and_resets_the_rest(reset_generator) -> None:
    library, path_a, path_b = trained_library()
    hyper = library.layers[-1]
    hyper.reset_generator = reset_generator
    train(library, path_a, 20)
    library.freeze(path_a)
    x = torch.randn(10, 6)
    out_a = library(x, path_a).detach().clone()
    z_4, w_in = hyper.z[4].detach().clone(), hyper.generator.w_in.detach().clone()
    library.reinit_unfrozen()
    assert torch.equal(library(x, path_a), out_a)
    assert not torch.equal(hyper.z[4], z_4)
    assert torch.equal(hyper.generator.w_in, w_in) != reset_generator


def test_a_layer_without_frozen_modules_resets_its_generator() -> None:
    layer = small_layer()
    w_out = layer.generator.w_out.detach().clone()
    layer.reset_unfrozen()
    assert not torch.equal(layer.generator.w_out, w_out)


def test_state_dict_round_trip_keeps_frozen_outputs_bitwise() -> None:
    library, path_a, path_b = trained_library()
    train(library, path_a, 20)
    library.freeze(path_a)
    train(library, path_b, 30)
    x = torch.randn(10, 6)
    out_a, out_b = library(x, path_a).detach(), library(x, path_b).detach()
    buffer = io.BytesIO()
    torch.save(library.state_dict(), buffer)
    buffer.seek(0)
    restored, _, _ = trained_library(seed=7)  # other initial values
    restored.load_state_dict(torch.load(buffer))
    hyper = restored.layers[-1]
    assert hyper.frozen.tolist() == [True, False, True, False, False, False]
    assert not hyper.z[0].requires_grad and hyper.z[1].requires_grad
    assert torch.equal(restored(x, path_a), out_a)
    assert torch.equal(restored(x, path_b), out_b)
    # The restored library guards its frozen modules: training B again leaves A bitwise.
    train(restored, path_b, 30, seed=2)
    assert torch.equal(restored(x, path_a), out_a)


def test_pickled_library_runs_in_a_spawned_process() -> None:
    library, path_a, _ = trained_library()
    library.freeze(path_a)
    x = torch.randn(5, 6)
    expected = library(x, path_a).detach()
    copy = pickle.loads(pickle.dumps(library))
    assert torch.equal(copy(x, path_a), expected)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(copy, (x, path_a))
    torch.testing.assert_close(result.detach(), expected)  # other threads: not always bitwise


def test_shared_memory_library_still_trains_the_path() -> None:
    library, path_a, _ = trained_library()
    library.share_memory()
    hyper = library.layers[-1]
    assert hyper.frozen_kernels.is_shared() and hyper.generator.w_in.is_shared()
    z_0 = hyper.z[0].detach().clone()
    train(library, path_a, 5)
    assert not torch.equal(hyper.z[0], z_0) and hyper.z[0].is_shared()


@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_modules_equal_the_naive_sum_and_freeze_by_cache(channels_last) -> None:
    torch.manual_seed(0)
    layer = HyperConv2dLayer(4, 3, 5, 3, stride=2, z_dim=6, hidden=5, out_tile=2, in_tile=2)
    assert layer.num_tiles == 3 * 2 and layer.generate([1]).shape == (1, 5, 3, 3, 3)
    x = torch.randn(2, 3, 9, 9)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    naive = sum(
        torch.relu(F.conv2d(x, layer.generate([m])[0], layer.biases[m], stride=2)) for m in (0, 3)
    )
    torch.testing.assert_close(layer(x, [0, 3, 0]), naive)
    assert layer(x, [0]).shape == (2, *layer.output_shape(9, 9))
    rows = [[0, 1], [2, 2]]
    population = layer.forward_population(x, rows)
    for p, row in enumerate(rows):
        torch.testing.assert_close(population[p], layer(x, row))
    library = PathLibrary([layer], output_size=5 * 4 * 4)
    library.freeze(torch.tensor([[0, 3]]))
    out = library(x, torch.tensor([[0, 3]])).detach().clone()
    optimizer = torch.optim.Adam(library.parameters(), lr=0.05)
    library.guard(optimizer)
    for _ in range(10):
        optimizer.zero_grad()
        library(x, torch.tensor([[1, 3]])).square().mean().backward()
        optimizer.step()
    assert torch.equal(library(x, torch.tensor([[0, 3]])), out)


def test_hyper_config_factory_and_registry() -> None:
    cfg = HyperConfig(z_dim=8, hidden=4, out_tile=5, in_tile=6, reset_generator=True)
    layer = cfg.layer_factory()(3, 12, 10, "mean")
    assert isinstance(layer, HyperLinearLayer) and layer.reduce == "mean"
    assert (layer.z_dim, layer.generator.hidden, layer.out_tile, layer.in_tile) == (8, 4, 5, 6)
    assert layer.reset_generator and layer.generator.b_in is None
    assert HyperConfig(generator_bias=True).layer_factory()(2, 4, 4, "sum").generator.b_out.shape
    assert pickle.loads(pickle.dumps(cfg.layer_factory()))(2, 4, 4, "sum").num_tiles == 1

    class Settings:
        hyper = cfg

    assert isinstance(layer_kind("hyper")(Settings())(2, 6, 6, "sum"), HyperLinearLayer)
    with pytest.raises(ValueError, match="hyper.z_dim"):
        HyperConfig(z_dim=0)


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError):
        HyperLinearLayer(3, 0, 4)
    with pytest.raises(ValueError):
        HyperLinearLayer(3, 4, 4, z_dim=0)
    with pytest.raises(ValueError):
        HyperConv2dLayer(3, 2, 2, 3, stride=0)


def test_parameter_count_is_smaller_than_plain_modules() -> None:
    # Ha's point: a module's own parameters (embeddings + bias) are fewer than its weights.
    hyper = HyperLinearLayer(10, 392, 50, z_dim=16, hidden=16)
    plain = LinearModuleLayer(10, 392, 50)
    per_module = hyper.z[0].numel() + hyper.biases[0].numel()
    assert per_module < plain.weights[0].numel() + plain.biases[0].numel()
