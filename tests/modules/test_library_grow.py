"""PathLibrary.grow: fresh modules appended, frozen ones bitwise untouched, state dicts follow."""

import pytest
import torch

from agents.moe_agents import MoEConfig
from modules.library import conv_library, linear_library


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


def test_conv_layers_grow_and_kinds_with_more_state_refuse():
    library = conv_library((2, 6, 6), [(4, 3, 1)], 3, 8)
    library.grow(0, 1)
    assert library.modules_per_layer == [4, 3]
    assert library(torch.randn(2, 2, 6, 6), torch.tensor([[3, 0], [2, 1]])).shape == (2, 8)
    moe = linear_library(8, 5, 2, 3, last_layer=MoEConfig().layer_factory())
    with pytest.raises(ValueError, match="MoEModuleLayer cannot grow"):
        moe.grow(1, 1)
    with pytest.raises(ValueError, match="positive"):
        library.grow(0, 0)
