"""agents/images.py: the module-usage image, for equal and for grown (ragged) layers."""

import torch

from pathevo.agents.images import CELL, usage_image


def cell(image, layer: int, module: int) -> list[int]:
    """The RGB value inside one cell (off its grid lines)."""
    return image[:, layer * CELL + CELL // 2, module * CELL + CELL // 2].tolist()


def test_usage_image_colours_used_frozen_and_missing_modules():
    usage = torch.tensor([[4, 0, 0, 0], [2, 0, 4, 0]])  # [L=2, max M=4]
    frozen = [torch.tensor([False, True, False]), torch.tensor([False, False, True, False])]
    image = usage_image(usage, frozen)
    assert image.shape == (3, 2 * CELL, 4 * CELL) and image.dtype.name == "uint8"
    assert cell(image, 0, 0) == [255, 255, 0]  # used by the whole population: yellow-white
    assert cell(image, 0, 1) == [0, 0, 255]  # frozen, unused: blue
    assert cell(image, 1, 2) == [0, 255, 255]  # frozen and used: cyan
    assert cell(image, 1, 0) == [128, 128, 0]  # half the top count
    assert cell(image, 0, 3) == [38, 38, 38]  # layer 0 has 3 modules: the fourth is grey
    assert cell(image, 1, 3) == [0, 0, 0]  # present, unused, not frozen


def test_a_stacked_frozen_tensor_draws_as_its_rows():
    usage = torch.tensor([[1, 0], [0, 1]])
    frozen = torch.tensor([[True, False], [False, False]])
    assert (usage_image(usage, frozen) == usage_image(usage, list(frozen))).all()
