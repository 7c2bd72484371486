"""The MoE layer's small-batch paths give what its dispatch gives.

A single path whose batch times experts is within ``dense_rows`` runs every expert on every
token; an acting pass (one observation, no autograd) runs only its k experts. Both must keep the
dispatch's semantics: the same outputs, balancing loss, gradients, capacity overflow and routing
record. The MoE actor-critic head acts through the cheapest of them.
"""

from __future__ import annotations

import copy

import pytest
import torch

from pathevo.modules.moe import MoEModuleLayer
from pathevo.modules.moe_head import MoEActorCriticHead


def twins(capacity_factor: float | None) -> tuple[MoEModuleLayer, MoEModuleLayer]:
    """The same layer twice: one runs dense, one dispatches."""
    torch.manual_seed(0)
    dense = MoEModuleLayer(6, 5, 7, 3, k=2, capacity_factor=capacity_factor)
    with torch.no_grad():
        dense.gates["default"].normal_(std=2.0)
        dense.noise_gates["default"].normal_()
    dispatch = copy.deepcopy(dense)
    dense.dense_rows, dispatch.dense_rows = 10**6, 0
    return dense, dispatch


def run(layer: MoEModuleLayer, x: torch.Tensor, ids: list[int], seed: int):
    torch.manual_seed(seed)  # the same gate noise for both
    y, aux = layer.forward_with_aux(x, ids)
    (y.square().sum() + aux).backward()
    return y, aux


@pytest.mark.parametrize("capacity_factor", [None, 0.5])  # 0.5: choices overflow
@pytest.mark.parametrize("ids", [[0, 1, 2, 3, 4, 5], [4, 1, 3]])
@pytest.mark.parametrize("training", [True, False])
def test_dense_equals_the_dispatch(capacity_factor, ids, training) -> None:
    dense, dispatch = twins(capacity_factor)
    dense.train(training), dispatch.train(training)
    x = torch.randn(24, 5)
    x_dense, x_dispatch = x.clone().requires_grad_(), x.clone().requires_grad_()
    for seed in range(3):
        y, aux = run(dense, x_dense, ids, seed)
        expected_y, expected_aux = run(dispatch, x_dispatch, ids, seed)
        torch.testing.assert_close(y, expected_y)
        torch.testing.assert_close(aux, expected_aux)
    torch.testing.assert_close(x_dense.grad, x_dispatch.grad)
    for (name, mine), (_, theirs) in zip(
        dense.named_parameters(), dispatch.named_parameters(), strict=True
    ):
        if theirs.grad is None:
            assert mine.grad is None, name
        else:
            torch.testing.assert_close(mine.grad, theirs.grad, msg=name)
    (mine,), (theirs,) = dense.take_routing().values(), dispatch.take_routing().values()
    assert torch.equal(mine.picks, theirs.picks) and torch.equal(mine.allowed, theirs.allowed)
    torch.testing.assert_close(mine.importance, theirs.importance)
    assert mine.tokens == theirs.tokens == 3 * 24


def test_overflow_happens_in_the_dense_test() -> None:
    """The capacity case above does drop choices (else it would test nothing)."""
    dense, _ = twins(0.5)
    dense.forward_with_aux(torch.randn(24, 5), list(range(6)))
    (routing,) = dense.take_routing().values()
    assert routing.picks.max() > dense.capacity(24, 6)


@pytest.mark.parametrize("training", [True, False])
def test_acting_on_one_observation_equals_the_full_pass(training) -> None:
    dense, dispatch = twins(None)
    x = torch.randn(1, 5)
    outputs = []
    with torch.no_grad():
        for layer, call in ((dense, "forward"), (dense, "with_aux"), (dispatch, "with_aux")):
            layer.train(training)
            torch.manual_seed(7)
            if call == "forward":
                outputs.append(layer(x, [5, 0, 2]))  # the acting path: its k experts only
            else:
                outputs.append(layer.forward_with_aux(x, [5, 0, 2])[0])
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(outputs[0], outputs[2])
    (acted,) = dense.take_routing().values()
    assert acted.tokens == 2 and acted.picks.sum() == 4  # both passes recorded, k=2 each
    assert acted.allowed.tolist() == [True, False, True, False, False, True]


def test_forward_returns_what_forward_with_aux_returns() -> None:
    dense, _ = twins(0.5)
    x = torch.randn(40, 5)
    torch.manual_seed(3)
    y = dense(x, list(range(6)))
    torch.manual_seed(3)
    torch.testing.assert_close(y, dense.forward_with_aux(x, list(range(6)))[0])


def test_moe_head_acts_without_a_balancing_loss_and_learns_with_one() -> None:
    torch.manual_seed(0)
    head = MoEActorCriticHead(16, 3, experts=4, expert_hidden=8, capacity_factor=2.0)
    features, starts = torch.randn(1, 1, 16), torch.zeros(1, 1, dtype=torch.bool)
    with torch.no_grad():
        torch.manual_seed(1)
        logits, value, _ = head(features, starts, None)
    assert head.take_aux_loss() is None
    torch.manual_seed(1)
    expected_logits, expected_value, _ = head(features, starts, None)
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(value, expected_value)
    aux = head.take_aux_loss()
    assert aux is not None and aux.requires_grad
    (routing,) = head.experts.take_routing().values()
    assert routing.tokens == 2  # the acting pass is recorded too
