"""A library moved with ``.to()`` keeps each layer's modules in one storage (so an MoE layer
still views consecutive experts instead of copying them, as on a GPU learner), moves its frozen
modules' saved values along, and leaves shared memory (Hogwild) as it was."""

import pytest
import torch

from pathevo.modules.layers import Conv2dModuleLayer, LinearModuleLayer, in_shared_memory
from pathevo.modules.library import PathLibrary
from pathevo.modules.moe import MoEModuleLayer
from tests.devices import needs_cuda


def storages(params) -> set[int]:
    return {param.untyped_storage().data_ptr() for param in params}


def test_to_restacks_every_kind_into_one_storage_keeping_values_and_identity():
    layer = LinearModuleLayer(5, 3, 4)
    values = layer.stacked("weights")
    first = layer.weights[0]
    layer.to(torch.float64)
    assert len(storages(layer.weights)) == 1 and len(storages(layer.biases)) == 1
    assert layer.weights[0] is first  # optimisers built before still hold it
    torch.testing.assert_close(layer.stacked("weights"), values.double())
    # The views sit in module order: module m at offset m.
    assert [p.storage_offset() for p in layer.weights] == [m * 12 for m in range(5)]


def test_shared_memory_is_left_one_segment_per_module():
    layer = LinearModuleLayer(3, 2, 2).share_memory()
    assert all(in_shared_memory(p) for p in layer.weights)


def test_an_moe_layer_moved_with_to_still_views_consecutive_experts():
    layer = MoEModuleLayer(64, 64, 64, 64, k=2, capacity_factor=None).to(torch.float64)
    view = layer._stacked("w1", list(range(64)))
    assert view.untyped_storage().data_ptr() == layer.w1[0].untyped_storage().data_ptr()


def test_frozen_values_follow_the_library():
    library = PathLibrary([Conv2dModuleLayer(3, 1, 2, 3), LinearModuleLayer(3, 32, 4)], 4)
    library.freeze(torch.tensor([[0, 1], [2, 2]]))
    library.to(torch.float64)
    assert all(saved.dtype == torch.float64 for saved in library._frozen_values.values())
    library.restore_frozen()  # the guard's copy works on the moved parameters


@pytest.mark.cuda
@needs_cuda
def test_a_population_on_the_gpu_takes_paths_from_the_cpu_with_repeated_modules():
    library = PathLibrary([LinearModuleLayer(4, 3, 5), LinearModuleLayer(4, 5, 2)], 2)
    paths = torch.tensor([[[0, 0], [1, 2]], [[3, 1], [2, 2]]])  # repeats in both
    x = torch.rand(2, 7, 3)
    expected = library.forward_population(x, paths)
    on_gpu = library.to("cuda").forward_population(x.cuda(), paths)
    torch.testing.assert_close(on_gpu.cpu(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
@needs_cuda
def test_a_library_on_the_gpu_keeps_one_storage_per_kind_and_views_experts():
    layer = MoEModuleLayer(64, 64, 64, 64, k=2, capacity_factor=None).to("cuda")
    assert len(storages(layer.w1)) == 1
    view = layer._stacked("w1", list(range(64)))
    assert view.untyped_storage().data_ptr() == layer.w1[0].untyped_storage().data_ptr()
