"""An actor-critic head: policy logits and a state value, with an optional LSTM core.

Mnih et al. 2016, arXiv:1602.01783: the A3C network ends in a softmax policy and a linear value
output that share everything below them; the recurrent agent puts an LSTM between the torso and
the two outputs. In PathNet-A3C (Fernando et al. 2017, arXiv:1701.08734) each task owns one such
head above the shared module library (see :class:`modules.heads.TaskHeads`). The recurrent core
is an :class:`torch.nn.LSTMCell` or a HyperLSTM (:class:`modules.hyper_lstm.HyperLSTMCell`, Ha
et al. 2016), chosen with ``core``; callers carry its state without knowing which it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from pathevo.modules.hyper_lstm import HyperLSTMCell

LSTMState = tuple[torch.Tensor, torch.Tensor]
"""A recurrent core's (h, c), each [B, state width]; a HyperLSTM's holds its hyper LSTM's too."""

Core = Literal["lstm", "hyperlstm"]
CORES: tuple[Core, ...] = ("lstm", "hyperlstm")

RecurrentCell = nn.LSTMCell | HyperLSTMCell

HeadFactory = Callable[[int, int, int], nn.Module]
"""``factory(in_features, num_actions, lstm_units)`` -> a head: ``forward(features [T, B, F],
starts [T, B], state) -> (logits [T, B, A], values [T, B], state)`` and ``initial_state(B)``.
An agent chooses its heads' factory (:class:`ActorCriticHead`, an MoE head, a pruned head)."""


def make_core(
    in_features: int,
    units: int,
    core: Core = "lstm",
    hyper_units: int = 32,
    hyper_embedding: int = 4,
    hyper_layer_norm: bool = True,
) -> RecurrentCell | None:
    """The recurrent core ``core`` with ``units`` outputs, or ``None`` when ``units`` is 0."""
    if core not in CORES:
        raise ValueError(f"unknown core {core!r}; choose one of {', '.join(CORES)}")
    if not units:
        return None
    if core == "hyperlstm":
        return HyperLSTMCell(in_features, units, hyper_units, hyper_embedding, hyper_layer_norm)
    return nn.LSTMCell(in_features, units)


def zero_state(cell: RecurrentCell | None, batch: int) -> LSTMState | None:
    """Zero state of ``cell`` for ``batch`` environments, or ``None`` without a core."""
    if cell is None:
        return None
    zeros = torch.zeros(batch, getattr(cell, "state_size", cell.hidden_size))
    return zeros, zeros.clone()


def unroll_lstm(
    cell: RecurrentCell, features: torch.Tensor, starts: torch.Tensor, state: LSTMState | None
) -> tuple[torch.Tensor, LSTMState]:
    """Run ``cell`` over time, resetting its state where an episode starts.

    features: [T, B, F]; starts: [T, B] bool -> outputs [T, B, H] (the first ``hidden_size``
    columns of h: a HyperLSTM's main LSTM), state after step T-1.
    """
    h, c = state if state is not None else zero_state(cell, features.shape[1])
    outputs = []
    for x, start in zip(features, starts, strict=True):
        keep = (~start).to(h.dtype).unsqueeze(1)  # [B, 1]
        h, c = cell(x, (h * keep, c * keep))
        outputs.append(h[:, : cell.hidden_size])
    return torch.stack(outputs), (h, c)


class ActorCriticHead(nn.Module):
    """Features -> (policy logits, value), over a time axis so a recurrent core can be unrolled.

    ``lstm_units`` > 0 puts a core of that width below the outputs: ``core`` "lstm" or
    "hyperlstm" (with ``hyper_units``, ``hyper_embedding`` and ``hyper_layer_norm``, see
    :func:`make_core`).
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        lstm_units: int = 0,
        core: Core = "lstm",
        hyper_units: int = 32,
        hyper_embedding: int = 4,
        hyper_layer_norm: bool = True,
    ) -> None:
        super().__init__()
        if in_features <= 0 or num_actions <= 0 or lstm_units < 0:
            raise ValueError("a head needs positive features and actions, lstm_units >= 0")
        self.lstm = make_core(
            in_features, lstm_units, core, hyper_units, hyper_embedding, hyper_layer_norm
        )
        width = lstm_units or in_features
        self.policy = nn.Linear(width, num_actions)
        self.value = nn.Linear(width, 1)
        # A near-uniform initial policy (small logits) keeps early exploration wide.
        nn.init.normal_(self.policy.weight, std=0.01)
        nn.init.zeros_(self.policy.bias)

    def initial_state(self, batch: int) -> LSTMState | None:
        """Zero core state for ``batch`` environments, or ``None`` without a core."""
        return zero_state(self.lstm, batch)

    def forward(
        self, features: torch.Tensor, starts: torch.Tensor, state: LSTMState | None
    ) -> tuple[torch.Tensor, torch.Tensor, LSTMState | None]:
        # features: [T, B, F]; starts: [T, B] bool (first step of an episode: reset the LSTM)
        # -> logits [T, B, A], values [T, B], state after step T-1 (h, c: [B, S]) or None
        if self.lstm is not None:
            features, state = unroll_lstm(self.lstm, features, starts, state)
        return self.policy(features), self.value(features).squeeze(-1), state
