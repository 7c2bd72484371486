"""Binary digit classification tasks, the supervised tasks of PathNet's first experiment.

Fernando et al. 2017 (arXiv:1701.08734) evolve paths on binary MNIST tasks (one digit against
another) with salt-and-pepper input noise. The default data are the 8×8 digits that ship with
scikit-learn (no download), optionally upsampled (bilinear) to MNIST's 28×28 so that inputs have
the paper's size; a user with the real MNIST IDX files passes their directory instead.
A task is named ``"AvB"`` (e.g. ``"3v5"``): class 0 is digit A, class 1 digit B.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pathevo.envs.mnist_idx import load_mnist

_TASK = re.compile(r"^(\d)v(\d)$")


@dataclass
class BinaryTask:
    """Inputs ``x`` [n, D] float in [0, 1] and labels ``y`` [n] long in {0, 1}."""

    name: str
    x: torch.Tensor
    y: torch.Tensor

    @property
    def input_size(self) -> int:
        return self.x.shape[1]


def parse_task(name: str) -> tuple[int, int]:
    """The two digits of a task name such as ``"3v5"``."""
    match = _TASK.match(name)
    if match is None or match.group(1) == match.group(2):
        raise ValueError(f"unknown task {name!r}: expected two different digits like '3v5'")
    return int(match.group(1)), int(match.group(2))


def all_tasks() -> list[str]:
    """The 45 unordered binary tasks ``"AvB"`` with A < B."""
    return [f"{a}v{b}" for a in range(10) for b in range(a + 1, 10)]


def make_binary_task(
    name: str, data_dir: str | Path | None = None, resolution: int | None = None
) -> BinaryTask:
    """The task ``name`` from scikit-learn's 8×8 digits, or from MNIST IDX files in ``data_dir``.

    ``resolution`` resizes the images (bilinear) to ``resolution × resolution`` first; ``None``
    keeps their own size (8 for scikit-learn's digits, 28 for MNIST).
    """
    first, second = parse_task(name)
    if resolution is not None and resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    images, labels = _dataset(str(data_dir) if data_dir is not None else None)
    keep = (labels == first) | (labels == second)
    x = torch.from_numpy(images[keep])  # [n, H, W]
    if resolution is not None and resolution != x.shape[-1]:
        x = F.interpolate(x.unsqueeze(1), size=(resolution, resolution), mode="bilinear")
        x = x.squeeze(1).clamp(0.0, 1.0)
    y = torch.from_numpy((labels[keep] == second).astype(np.int64))
    return BinaryTask(name=name, x=x.flatten(1).contiguous(), y=y)


@lru_cache(maxsize=2)
def _dataset(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Images [n, H, W] float32 in [0, 1] and labels [n]."""
    if data_dir is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)
    images, labels = load_mnist(data_dir, "train")
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def salt_and_pepper(
    x: torch.Tensor, amount: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each input value with probability ``amount`` by 0 or 1 (equally likely)."""
    if amount <= 0.0:
        return x
    hit = torch.rand(x.shape, generator=generator, device=x.device) < amount
    salt = (torch.rand(x.shape, generator=generator, device=x.device) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def sample_batch(
    task: BinaryTask, batch_size: int, noise: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A minibatch drawn uniformly with replacement, noise applied fresh: x [B, D], y [B]."""
    index = torch.randint(len(task.y), (batch_size,), generator=generator, device=task.y.device)
    return salt_and_pepper(task.x[index], noise, generator), task.y[index]
