"""What a continual-learning run trains and measures: path classifiers with one head per task,
held-out evaluation batches, and seeded policy evaluation for RL tasks.

PathNet (Fernando et al. 2017, arXiv:1701.08734) trains many tasks in turn through one module
library; every task keeps its own path and head. The accuracy matrix of Lopez-Paz & Ranzato
2017 (arXiv:1706.08840) needs every task re-evaluated after every later one, so evaluation
here is deterministic: a fixed, already-noised held-out batch for a digit task, a seeded
environment and seeded action sampling for an RL task. A fixed batch's outputs (the *probe*)
let a run show that a frozen path's function did not change at all.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from pathevo.agents.pathnet_a3c import PathNetA3C
from pathevo.envs import make_env
from pathevo.envs.digits import BinaryTask, salt_and_pepper
from pathevo.modules.heads import TaskHeads
from pathevo.modules.library import PathLibrary


class PathClassifier(nn.Module):
    """A module library plus one two-class linear head per task; ``forward`` runs one path."""

    def __init__(self, library: PathLibrary) -> None:
        super().__init__()
        self.library = library
        self.heads = TaskHeads()

    def add_task(self, task: str, classes: int = 2) -> nn.Module:
        """A fresh head for ``task`` and the task's parts of the library (an MoE gate)."""
        self.library.add_task(task)
        return self.heads.add(task, nn.Linear(self.library.output_size, classes))

    def forward(self, x: torch.Tensor, *, path: torch.Tensor, task: str) -> torch.Tensor:
        # x: [B, D]; path: [L, N] long -> logits [B, classes]
        return self.heads[task](self.library(x, path, task))

    def task_logits(self, x: torch.Tensor, *, path: torch.Tensor, task: str) -> torch.Tensor:
        """The class scores of ``task`` along ``path``: this model's forward, under the name
        every task model answers (:func:`eval_outputs`)."""
        # x: [B, D]; path: [L, N] long -> logits [B, classes]
        return self(x, path=path, task=task)


def split_task(task: BinaryTask, held_out: float, seed: int) -> tuple[BinaryTask, BinaryTask]:
    """A seeded random split into (training, held-out) tasks; ``held_out`` is the test share."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must lie in (0, 1), got {held_out}")
    order = torch.randperm(len(task.y), generator=torch.Generator().manual_seed(seed))
    test = max(1, round(held_out * len(order)))
    train_ids, test_ids = order[test:], order[:test]
    return (
        dataclasses.replace(task, x=task.x[train_ids], y=task.y[train_ids]),
        dataclasses.replace(task, x=task.x[test_ids], y=task.y[test_ids]),
    )


def fixed_noisy_batch(
    task: BinaryTask, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole task with salt-and-pepper noise applied once, from ``seed``: x [n, D], y [n].

    Evaluated on the same noise as training (PathNet's tasks are noisy), drawn once so that
    every re-evaluation sees the very same inputs.
    """
    generator = torch.Generator(device=task.x.device).manual_seed(seed)
    return salt_and_pepper(task.x, noise, generator), task.y


@torch.no_grad()
def eval_outputs(
    model: PathClassifier | PathNetA3C, x: torch.Tensor, path: torch.Tensor, task: str
) -> torch.Tensor:
    """``model.task_logits`` for ``task`` on ``x`` along ``path`` in eval mode (no gate noise):
    logits [B, classes] of a :class:`PathClassifier`, policy logits [B, A] of a PathNet-A3C."""
    was_training = model.training
    model.eval()
    try:
        return model.task_logits(x, path=path, task=task)
    finally:
        model.train(was_training)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``logits`` ([B, C]) whose arg-max is the label ``y`` ([B])."""
    return (logits.argmax(1) == y).float().mean().item()


def observation_batch(env_id: str, size: int, seed: int) -> torch.Tensor:
    """``size`` observations of ``env_id`` from a seeded uniformly random policy: [size, ...]."""
    env = make_env(env_id, seed)
    env.action_space.seed(seed)
    try:
        obs, _ = env.reset(seed=seed)
        seen = []
        while len(seen) < size:
            seen.append(np.asarray(obs))
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return torch.as_tensor(np.stack(seen))


@torch.no_grad()
def policy_return(
    model: PathNetA3C,
    env_id: str,
    path: torch.Tensor,
    task: str,
    episodes: int,
    seed: int,
    max_steps: int,
) -> float:
    """Mean undiscounted return of ``task``'s policy along ``path`` over ``episodes`` episodes.

    Actions are sampled from the policy with a generator seeded by ``seed`` and the env is
    seeded too, so equal parameters give an equal return. An episode stops after ``max_steps``.
    """
    env = make_env(env_id, seed)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            state = model.initial_state(task, 1)
            starts = torch.ones(1, 1, dtype=torch.bool)
            for _ in range(max_steps):
                x = torch.as_tensor(np.asarray(obs)).unsqueeze(0).unsqueeze(0)  # [1, 1, ...]
                logits, _, state = model(x, starts, state, path=path, task=task)
                probs = torch.softmax(logits[0, 0].float(), -1)
                action = int(torch.multinomial(probs, 1, generator=generator))
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                starts = torch.zeros(1, 1, dtype=torch.bool)
                if terminated or truncated:
                    break
    finally:
        env.close()
        model.train(was_training)
    return total / episodes
