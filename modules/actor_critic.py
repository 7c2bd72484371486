"""An actor-critic head: policy logits and a state value, with an optional recurrent core.

Mnih et al. 2016, arXiv:1602.01783: the A3C network ends in a softmax policy and a linear value
output that share everything below them; the recurrent agent puts an LSTM between the torso and
the two outputs. In PathNet-A3C (Fernando et al. 2017, arXiv:1701.08734) each task owns one such
head above the shared module library (see :class:`pathevo.modules.heads.TaskHeads`). The recurrent
core is any registered kind (:mod:`pathevo.modules.cores`: an LSTM, a HyperLSTM, …), given as one
``core`` factory; callers carry its state without knowing which it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pathevo.modules.cores import DEFAULT_CORE, CoreFactory
from pathevo.modules.recurrent import CoreState, unroll_core, zero_state

HeadFactory = Callable[[int, int, int], nn.Module]
"""``factory(in_features, num_actions, lstm_units)`` -> a head: ``forward(features [T, B, F],
starts [T, B], state) -> (logits [T, B, A], values [T, B], state)`` and ``initial_state(B)``.
An agent chooses its heads' factory (:class:`ActorCriticHead`, an MoE head, a pruned head)."""


class ActorCriticHead(nn.Module):
    """Features -> (policy logits, value), over a time axis so a recurrent core can be unrolled.

    ``lstm_units`` > 0 puts a core of that width below the outputs, built by ``core`` (a
    :class:`~pathevo.modules.cores.CoreSpec`; default a plain LSTM). Its parameters are ``lstm.*``
    whatever its kind, so checkpoints keep their names.
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        lstm_units: int = 0,
        core: CoreFactory = DEFAULT_CORE,
    ) -> None:
        super().__init__()
        if in_features <= 0 or num_actions <= 0 or lstm_units < 0:
            raise ValueError("a head needs positive features and actions, lstm_units >= 0")
        self.lstm = core(in_features, lstm_units) if lstm_units else None
        width = lstm_units or in_features
        self.policy = nn.Linear(width, num_actions)
        self.value = nn.Linear(width, 1)
        # A near-uniform initial policy (small logits) keeps early exploration wide.
        nn.init.normal_(self.policy.weight, std=0.01)
        nn.init.zeros_(self.policy.bias)

    def initial_state(self, batch: int) -> CoreState | None:
        """Zero core state for ``batch`` environments, or ``None`` without a core."""
        return zero_state(self.lstm, batch)

    def forward(
        self, features: torch.Tensor, starts: torch.Tensor, state: CoreState | None
    ) -> tuple[torch.Tensor, torch.Tensor, CoreState | None]:
        # features: [T, B, F]; starts: [T, B] bool (first step of an episode: reset the core)
        # -> logits [T, B, A], values [T, B], state after step T-1 (an LSTM's h, c: [B, S]) or None
        if self.lstm is not None:
            features, state = unroll_core(self.lstm, features, starts, state)
        return self.policy(features), self.value(features).squeeze(-1), state
