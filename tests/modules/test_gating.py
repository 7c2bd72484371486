"""Noisy top-k gating and the balancing losses (Shazeer et al. 2017, appendix A)."""

from __future__ import annotations

import pytest
import torch

from pathevo.modules.gating import AuxLosses, balance_losses, cv_squared, noisy_top_k


def test_top_k_keeps_k_largest_and_softmaxes_over_them() -> None:
    clean = torch.tensor([[0.1, 2.0, -1.0, 1.0], [3.0, 0.0, 0.5, 0.2]])
    gating = noisy_top_k(clean, None, k=2)
    assert gating.top_slots.tolist() == [[1, 3], [0, 2]]
    expected = torch.softmax(torch.tensor([[2.0, 1.0], [3.0, 0.5]]), dim=1)
    torch.testing.assert_close(gating.top_gates, expected)
    dense = torch.zeros(2, 4)
    dense[0, [1, 3]], dense[1, [0, 2]] = expected[0], expected[1]
    torch.testing.assert_close(gating.gates, dense)
    assert (gating.gates > 0).sum(1).tolist() == [2, 2]
    assert gating.load.tolist() == [[0, 1, 0, 1], [1, 0, 1, 0]]  # hard choices without noise


def test_zero_gate_weighs_its_choices_equally_and_balances_under_noise() -> None:
    gating = noisy_top_k(torch.zeros(5, 6), None, k=3)
    torch.testing.assert_close(gating.top_gates, torch.full((5, 3), 1 / 3))
    # With noise (training), ties break at random: the k choices spread over all experts, and
    # both balancing losses vanish as the batch grows.
    torch.manual_seed(0)
    noisy = noisy_top_k(torch.zeros(20000, 6), torch.full((20000, 6), 0.69), k=3)
    picks = torch.bincount(noisy.top_slots.flatten(), minlength=6).float()
    assert cv_squared(picks) < 0.005
    loss = balance_losses(noisy.gates.sum(0), noisy.load.sum(0), 1.0, 1.0)
    assert loss < 0.005


def test_unavailable_slots_are_never_chosen() -> None:
    torch.manual_seed(0)
    clean = torch.randn(64, 5) * 3
    available = torch.rand(64, 5) > 0.4
    available[:, 0] = True  # at least one choice per token
    gating = noisy_top_k(clean, torch.ones(64, 5), k=2, available=available)
    chosen = gating.gates > 0
    assert not (chosen & ~available).any()
    assert (gating.load[~available] == 0).all()


def test_cv_squared() -> None:
    assert cv_squared(torch.tensor([2.0, 2.0, 2.0])) == 0
    masked = cv_squared(torch.tensor([1.0, 3.0, 0.0]), torch.tensor([True, True, False]))
    torch.testing.assert_close(masked, torch.tensor(0.25))
    assert cv_squared(torch.tensor([5.0])) == 0
    torch.testing.assert_close(cv_squared(torch.tensor([1.0, 3.0])), torch.tensor(0.25))
    rows = cv_squared(torch.tensor([[1.0, 1.0], [1.0, 3.0]]))
    torch.testing.assert_close(rows, torch.tensor([0.0, 0.25]))


def test_balance_losses_zero_when_balanced_positive_otherwise() -> None:
    even = torch.full((4,), 8.0)
    assert balance_losses(even, even, 0.1, 0.1) == 0
    skewed = torch.tensor([20.0, 4.0, 4.0, 4.0])
    assert balance_losses(skewed, even, 0.1, 0.0) > 0
    assert balance_losses(even, skewed, 0.0, 0.1) > 0
    torch.testing.assert_close(balance_losses(skewed, skewed, 0.1, 0.3), 0.4 * cv_squared(skewed))


def test_smooth_load_is_a_probability_and_reaches_the_noise_weights() -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    w_gate = torch.randn(8, 6, requires_grad=True)
    w_noise = torch.randn(8, 6, requires_grad=True)
    gating = noisy_top_k(x @ w_gate, torch.nn.functional.softplus(x @ w_noise), k=2)
    assert ((gating.load >= 0) & (gating.load <= 1)).all()
    # The expected number of chosen slots per token is close to k (exactly k in expectation
    # only approximately: each slot's probability conditions on the others' drawn noise).
    assert gating.load.sum(1).mean().item() == pytest.approx(2.0, abs=0.5)
    loss = cv_squared(gating.load.sum(0))
    loss.backward()
    assert w_noise.grad is not None and w_noise.grad.abs().sum() > 0
    assert w_gate.grad is not None and w_gate.grad.abs().sum() > 0


def test_importance_gradient_reaches_the_gate() -> None:
    x = torch.randn(16, 4)
    w_gate = torch.randn(4, 5, requires_grad=True)
    gating = noisy_top_k(x @ w_gate, None, k=2)
    cv_squared(gating.gates.sum(0)).backward()
    assert w_gate.grad.abs().sum() > 0


def test_aux_losses_are_collected_only_with_autograd() -> None:
    losses = AuxLosses()
    assert losses.take() is None
    losses.add(torch.tensor(1.0))
    losses.add(None)
    with torch.no_grad():
        losses.add(torch.tensor(100.0))
    losses.add(torch.tensor(3.0))
    assert losses.take() == 2.0
    assert losses.take() is None
