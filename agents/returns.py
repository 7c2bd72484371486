"""The maths of A3C: n-step returns, generalised advantage estimates and the actor-critic loss.

Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning", arXiv:1602.01783
(Algorithm S3: n-step returns bootstrapped from the value of the state after the rollout, a
policy-gradient term weighted by the advantage, a value regression term and an entropy bonus).
Schulman et al. 2016, arXiv:1506.02438, for the optional GAE(λ) advantages.

Pure functions over tensors shaped ``[T, E]`` (time, environment); no state, no randomness.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


def n_step_returns(
    rewards: torch.Tensor, dones: torch.Tensor, bootstrap: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Discounted returns of every step, bootstrapped from the value after the last step.

    rewards: [T, E]; dones: [T, E] bool, True where the episode ended with step t (no bootstrap
    across it); bootstrap: [E], V(s_T) -> [T, E] with R_t = r_t + γ (1 - done_t) R_{t+1},
    R_T = V(s_T).
    """
    not_done = (~dones).to(rewards.dtype)
    returns = torch.empty_like(rewards)
    running = bootstrap.to(rewards.dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * not_done[t] * running
        returns[t] = running
    return returns


def gae_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    bootstrap: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """GAE(λ) advantages; λ = 1 gives n-step returns minus values, λ = 0 one-step TD errors.

    rewards, values: [T, E]; dones: [T, E] bool; bootstrap: [E] -> [T, E].
    """
    not_done = (~dones).to(rewards.dtype)
    next_values = torch.cat([values[1:], bootstrap.unsqueeze(0).to(values.dtype)])  # [T, E]
    deltas = rewards + gamma * not_done * next_values - values
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(bootstrap, dtype=rewards.dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages


class A3CLoss(NamedTuple):
    """The total loss to differentiate and its parts (scalars)."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor


def a3c_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    advantages: torch.Tensor,
    value_coef: float,
    entropy_coef: float,
) -> A3CLoss:
    """Actor-critic loss averaged over a batch of steps.

    logits: [B, A]; actions: [B] long; values: [B] (with gradient); returns, advantages: [B]
    (treated as constants). total = -mean(log π(a|s) A) + c_v · ½ mean((R - V)²) - c_H · mean(H).
    """
    log_probs = F.log_softmax(logits, dim=-1)  # [B, A]
    taken = log_probs.gather(1, actions.unsqueeze(1)).squeeze(1)  # [B]
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    policy = -(taken * advantages.detach()).mean()
    value = 0.5 * (returns.detach() - values).pow(2).mean()
    total = policy + value_coef * value - entropy_coef * entropy
    return A3CLoss(total, policy, value, entropy)
