"""Transfer: freeze A's best path, re-initialise the rest, measure which modules B reuses."""

import torch

from pathevo.evolution.transfer import begin_transfer, module_reuse, reused_modules
from pathevo.modules import linear_library


def test_begin_transfer_freezes_the_path_and_reinitialises_the_rest():
    torch.manual_seed(0)
    library = linear_library(6, 4, num_layers=2, num_modules=5)
    before = [layer.stacked("weights") for layer in library.layers]
    path = torch.tensor([[0, 3], [2, 2]])
    begin_transfer(library, path)
    assert [mask.nonzero().flatten().tolist() for mask in library.frozen_mask()] == [[0, 3], [2]]
    for layer, old, ids in zip(library.layers, before, [{0, 3}, {2}], strict=True):
        for m in range(5):
            assert torch.equal(layer.weights[m], old[m]) == (m in ids)


def test_module_reuse_counts_distinct_modules_of_b_on_a():
    path_a = torch.tensor([[0, 1], [2, 3]])
    path_b = torch.tensor([[1, 1], [3, 4]])  # B uses {1} and {3, 4}: two of three on A's path
    assert reused_modules(path_b, path_a) == [[1], [3]]
    assert module_reuse(path_b, path_a) == 2 / 3
    assert module_reuse(path_a, path_a) == 1.0
    assert module_reuse(torch.tensor([[5, 6], [7, 8]]), path_a) == 0.0
