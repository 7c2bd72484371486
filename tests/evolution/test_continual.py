"""The accuracy-matrix bookkeeping (GEM's ACC, BWT, FWT) and library occupancy, by hand."""

import pytest
import torch

from pathevo.evolution import continual as cl

# R[i][j]: accuracy on task j after learning task i (3 tasks).
R = [
    [0.90, 0.40, 0.50],
    [0.70, 0.80, 0.45],
    [0.60, 0.75, 0.95],
]
REFERENCE = [0.50, 0.50, 0.40]


def test_acc_bwt_fwt_of_a_hand_made_matrix():
    assert cl.average_accuracy(R) == pytest.approx((0.60 + 0.75 + 0.95) / 3)
    # BWT: (R[2,0] - R[0,0] + R[2,1] - R[1,1]) / 2 = (-0.30 - 0.05) / 2
    assert cl.backward_transfer(R) == pytest.approx(-0.175)
    # FWT: (R[0,1] - b_1 + R[1,2] - b_2) / 2 = (-0.10 + 0.05) / 2
    assert cl.forward_transfer(R, REFERENCE) == pytest.approx(-0.025)
    assert cl.summarise_matrix(R, REFERENCE) == pytest.approx(
        {"acc": 2.30 / 3, "bwt": -0.175, "fwt": -0.025}
    )


def test_no_forgetting_means_bwt_exactly_zero():
    frozen = [[0.9, 0.1], [0.9, 0.8]]
    assert cl.backward_transfer(frozen) == 0.0
    assert cl.backward_transfer([[0.7]]) == 0.0 and cl.forward_transfer([[0.7]], [0.5]) == 0.0


def test_matrix_bookkeeping_errors():
    empty = cl.empty_matrix(3)
    assert empty == [[None] * 3] * 3
    empty[0][0] = 1.0
    assert empty[1][0] is None  # rows are distinct lists
    with pytest.raises(ValueError, match="unfilled"):
        cl.average_accuracy(empty)
    with pytest.raises(ValueError, match="square"):
        cl.backward_transfer([[1.0, 0.5]])
    with pytest.raises(ValueError, match="one reference value per task"):
        cl.forward_transfer(R, [0.5])
    with pytest.raises(ValueError, match="at least one task"):
        cl.empty_matrix(0)


def test_occupancy_free_modules_and_the_full_library_message():
    frozen = [torch.tensor([True, True, False, False]), torch.tensor([True, True, True, False])]
    assert cl.occupancy(frozen) == [0.5, 0.75]
    assert cl.free_modules(frozen) == [2, 1]
    assert cl.shortfall(frozen, 2) == [0, 1]
    assert cl.full_layers_message(frozen, 1, "digits/4v5") is None
    message = cl.full_layers_message(frozen, 2, "digits/4v5")
    assert "\n" not in message and "layer 1 has 1 of 4" in message and "layer 0" not in message
    assert "--grow" in message and "digits/4v5" in message


def test_reuse_of_frozen_modules():
    frozen = [torch.tensor([True, False, False]), torch.tensor([False, True, True])]
    path = torch.tensor([[0, 1], [2, 2]])  # layer 1 lists module 2 twice: it counts once
    reuse = cl.reuse_of_frozen(path, frozen)
    assert reuse["reused_modules"] == [[0], [2]]
    assert reuse["module_reuse"] == pytest.approx(2 / 3)
