"""LeNet-300-100: the fully connected classifier of the lottery-ticket paper's first experiment.

Frankle & Carbin 2019, "The Lottery Ticket Hypothesis", arXiv:1803.03635, Figure 2 and §2: a
784-300-100-10 network with ReLU hidden layers (LeCun et al. 1998), Gaussian Glorot
initialisation, trained with Adam (lr 1.2e-3, minibatches of 60) on MNIST. The hidden layers are
``hidden``, the output layer is ``head``, so that :func:`pathevo.modules.pruning.head_targets`
finds the output layer alone (the paper prunes it at half the hidden layers' rate).

Example:
    >>> net = LeNet(784, 10)
    >>> net.task_logits(torch.zeros(2, 784)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LeNet(nn.Module):
    """``in_features`` -> ``hidden`` (ReLU each) -> ``classes`` class scores."""

    def __init__(self, in_features: int, classes: int, hidden: Sequence[int] = (300, 100)) -> None:
        super().__init__()
        self.library = None  # one network, no paths (as A3CNet; the lottery helpers read it)
        if in_features <= 0 or classes <= 0 or min(hidden, default=1) <= 0:
            raise ValueError("LeNet needs positive input, hidden and class sizes")
        layers: list[nn.Module] = []
        width = in_features
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)
        for module in self.modules():
            if isinstance(module, nn.Linear):  # the paper's Gaussian Glorot, zero biases
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, D] -> class scores [B, classes]
        return self.head(self.hidden(x))

    def task_logits(
        self, x: torch.Tensor, *, path: torch.Tensor | None = None, task: str | None = None
    ) -> torch.Tensor:
        """The class scores, under the name every task model answers; one network serves one
        task, so ``path`` and ``task`` are ignored."""
        # x: [B, D] -> [B, classes]
        del path, task
        return self(x)
