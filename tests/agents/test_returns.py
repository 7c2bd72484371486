"""n-step returns, GAE and the A3C loss against values computed by hand."""

import math

import pytest
import torch

from pathevo.agents.returns import a3c_loss, gae_advantages, n_step_returns


def test_n_step_returns_bootstrap_and_episode_end():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    dones = torch.tensor([[False], [True], [False]])
    bootstrap = torch.tensor([10.0])
    returns = n_step_returns(rewards, dones, bootstrap, gamma=0.5)
    # t=2: 3 + 0.5*10 = 8; t=1 ends an episode: 2; t=0: 1 + 0.5*2 = 2
    assert torch.allclose(returns, torch.tensor([[2.0], [2.0], [8.0]]))


def test_n_step_returns_per_environment_columns():
    rewards = torch.ones(4, 2)
    dones = torch.zeros(4, 2, dtype=torch.bool)
    returns = n_step_returns(rewards, dones, torch.tensor([0.0, 100.0]), gamma=1.0)
    assert returns[:, 0].tolist() == [4.0, 3.0, 2.0, 1.0]
    assert returns[:, 1].tolist() == [104.0, 103.0, 102.0, 101.0]


def test_gae_lambda_one_is_n_step_advantage_and_zero_is_td_error():
    torch.manual_seed(0)
    rewards, values = torch.randn(6, 3), torch.randn(6, 3)
    dones = torch.rand(6, 3) < 0.3
    bootstrap = torch.randn(3)
    expected = n_step_returns(rewards, dones, bootstrap, 0.9) - values
    assert torch.allclose(gae_advantages(rewards, values, dones, bootstrap, 0.9, 1.0), expected)
    next_values = torch.cat([values[1:], bootstrap[None]])
    td = rewards + 0.9 * (~dones).float() * next_values - values
    assert torch.allclose(gae_advantages(rewards, values, dones, bootstrap, 0.9, 0.0), td)


def test_a3c_loss_parts():
    logits = torch.zeros(2, 4, requires_grad=True)  # uniform policy
    values = torch.tensor([1.0, 2.0], requires_grad=True)
    actions = torch.tensor([0, 3])
    returns = torch.tensor([3.0, 2.0])
    advantages = torch.tensor([2.0, -1.0])
    loss = a3c_loss(logits, actions, values, returns, advantages, 0.5, 0.01)
    assert loss.entropy.item() == pytest.approx(math.log(4))
    assert loss.value.item() == pytest.approx(0.5 * (4.0 + 0.0) / 2)
    assert loss.policy.item() == pytest.approx(-(2.0 - 1.0) * math.log(0.25) / 2)
    expected = loss.policy + 0.5 * loss.value - 0.01 * loss.entropy
    assert loss.total.item() == pytest.approx(expected.item())
    loss.total.backward()
    # A positive advantage raises the taken action's logit (gradient descent on -log pi * A).
    assert logits.grad[0, 0] < 0 and logits.grad[1, 3] > 0
    # Advantages and returns are constants: only values and logits get gradients.
    assert values.grad.tolist() == pytest.approx([0.5 * (1.0 - 3.0) / 2, 0.0])
