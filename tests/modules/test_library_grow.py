"""PathLibrary.grow: fresh modules appended, frozen ones bitwise untouched, state dicts follow."""

import pytest
import torch
from torch import nn

from pathevo.agents.hyper_agents import HyperConfig
from pathevo.agents.moe_agents import MoEConfig
from pathevo.modules.cppn_layer import cppn_layer_factory
from pathevo.modules.layers import LinearModuleLayer, ModuleLayer
from pathevo.modules.library import LayerFactory, conv_library, linear_library

LAST_LAYERS: dict[str, LayerFactory] = {
    "linear": LinearModuleLayer,
    "moe": MoEConfig(expert_hidden=6).layer_factory(),
    "hyper": HyperConfig(z_dim=4, hidden=3, out_tile=4, in_tile=4).layer_factory(),
    "cppn": cppn_layer_factory(),
}


def test_grow_keeps_frozen_modules_bitwise_and_trains_the_new_ones():
    torch.manual_seed(0)
    library = linear_library(8, 5, 2, 3)
    frozen_path = torch.tensor([[0, 1], [1, 2]])
    library.freeze(frozen_path)
    x = torch.randn(4, 8)
    before = library(x, frozen_path)
    library.grow(0, 2)
    library.grow(1, 1)
    assert library.modules_per_layer == [5, 4]
    assert [mask.tolist() for mask in library.frozen_mask()] == [
        [True, True, False, False, False],
        [False, True, True, False],
    ]
    new_path = torch.tensor([[0, 4], [1, 3]])  # frozen and new modules together
    new_weight = library.layers[0].weights[4].detach().clone()
    optimizer = torch.optim.Adam(library.parameters(), lr=0.1)  # built after growing
    library.guard(optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        library(x, new_path).square().sum().backward()
        optimizer.step()
    assert torch.equal(library(x, frozen_path), before)
    assert not torch.equal(library.layers[0].weights[4].detach(), new_weight)


def test_a_grown_library_round_trips_through_its_state_dict():
    library = linear_library(8, 5, 2, 3)
    path = torch.tensor([[0, 2], [1, 1]])
    library.freeze(path)
    library.grow(1, 2)
    copy = linear_library(8, 5, 2, 3)
    copy.grow(1, 2)
    copy.load_state_dict(library.state_dict())
    x = torch.randn(3, 8)
    assert torch.equal(copy(x, path), library(x, path))
    assert torch.equal(copy.layers[1].frozen, library.layers[1].frozen)


@pytest.mark.parametrize("kind", sorted(LAST_LAYERS))
def test_every_last_layer_kind_grows_with_its_frozen_task_bitwise_intact(kind):
    torch.manual_seed(1)
    library = linear_library(8, 5, 2, 3, last_layer=LAST_LAYERS[kind])
    library.add_task("a")
    frozen_path = torch.tensor([[0, 1], [1, 2]])
    x = torch.randn(6, 8)
    library.freeze(frozen_path, task="a")
    library.eval()  # no gate noise: outputs are comparable
    before = library(x, frozen_path, task="a")
    library.grow(0, 1)
    library.grow(1, 2)
    assert library.modules_per_layer == [4, 5]
    assert torch.equal(library(x, frozen_path, task="a"), before)
    library.add_task("b")
    new_path = torch.tensor([[3, 1], [4, 3]])  # new modules next to a frozen one
    last = library.layers[1]
    kind_name = last.parameter_kinds[0]
    new_module = getattr(last, kind_name)[4].detach().clone()
    optimizer = torch.optim.Adam(library.parameters(), lr=0.05)  # built after growing
    library.guard(optimizer)
    library.train()
    for _ in range(5):
        optimizer.zero_grad()
        loss = library(x, new_path, task="b").square().sum()
        aux = library.take_aux_loss()
        (loss if aux is None else loss + aux).backward()
        optimizer.step()
    library.eval()
    assert torch.equal(library(x, frozen_path, task="a"), before)
    assert not torch.equal(getattr(last, kind_name)[4].detach(), new_module)
    copy = linear_library(8, 5, 2, 3, last_layer=LAST_LAYERS[kind])
    copy.grow(0, 1)
    copy.grow(1, 2)
    copy.load_state_dict(library.state_dict())
    copy.eval()
    assert torch.equal(copy(x, frozen_path, task="a"), before)
    assert torch.equal(copy(x, new_path, task="b"), library(x, new_path, task="b"))


def test_a_moe_layer_grows_its_gates_with_zero_columns():
    library = linear_library(8, 5, 1, 3, last_layer=LAST_LAYERS["moe"])
    layer = library.layers[0]
    old_gate = layer.gates["default"].detach().clone()
    library.grow(0, 2)
    assert layer.gates["default"].shape == (8, 5)
    assert torch.equal(layer.gates["default"][:, :3], old_gate)
    assert not layer.gates["default"][:, 3:].any()
    assert not layer.noise_gates["default"][:, 3:].any()


def test_a_grown_cppn_layer_paints_its_new_modules_as_a_larger_layer_would():
    grown = linear_library(8, 5, 1, 3, last_layer=LAST_LAYERS["cppn"])
    grown.grow(0, 2)
    larger = linear_library(8, 5, 1, 5, last_layer=LAST_LAYERS["cppn"])
    for m in (3, 4):
        assert torch.equal(grown.layers[0].weights[m], larger.layers[0].weights[m])


def test_a_hyper_layer_caches_kernels_of_modules_frozen_after_growing():
    library = linear_library(8, 5, 1, 3, last_layer=LAST_LAYERS["hyper"])
    library.grow(0, 2)
    layer = library.layers[0]
    assert layer.frozen_kernels.shape == (5, 5, 8)
    library.freeze(torch.tensor([[4, 0]]))
    assert torch.equal(layer.frozen_kernels[4], layer.generate([4])[0].detach())


class _GatedLayer(LinearModuleLayer):
    """A kind with a parameter besides its modules that does not say how it grows."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.scale = nn.Parameter(torch.ones(1))


def test_conv_layers_grow_and_kinds_with_unhandled_state_refuse():
    library = conv_library((2, 6, 6), [(4, 3, 1)], 3, 8)
    library.grow(0, 1)
    assert library.modules_per_layer == [4, 3]
    assert library(torch.randn(2, 2, 6, 6), torch.tensor([[3, 0], [2, 1]])).shape == (2, 8)
    gated: ModuleLayer = _GatedLayer(3, 4, 2)
    with pytest.raises(ValueError, match="_GatedLayer cannot grow"):
        gated.grow(1)
    assert gated.num_modules == 3
    with pytest.raises(ValueError, match="positive"):
        library.grow(0, 0)
