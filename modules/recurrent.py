"""What a recurrent core is: one step ``(x, state) -> state``, its zero state, and its output.

A recurrent core sits between an agent's torso and its policy/value outputs (Mnih et al. 2016,
arXiv:1602.01783, the LSTM agent). Heads unroll any core over a rollout with :func:`unroll_core`
and carry its state without knowing its kind, so a new kind (GRU, …) is a
:class:`RecurrentCore` subclass plus a registration in :mod:`pathevo.modules.cores`. The marker also
tells pruning what to leave dense (:func:`is_recurrent`).
"""

from __future__ import annotations

import torch
from torch import nn

CoreState = tuple[torch.Tensor, ...]
"""A recurrent core's state: tensors [B, width] (an LSTM's (h, c); a HyperLSTM's are wider, its
hyper LSTM's too). The core's output is the first ``hidden_size`` columns of the first."""


class RecurrentCore(nn.Module):
    """A recurrent step ``forward(x [B, in], state) -> state`` with ``hidden_size`` outputs.

    Subclasses say their state's layout in :meth:`initial_state`; :meth:`output` reads the first
    ``hidden_size`` columns of the state's first tensor unless they say otherwise.
    """

    hidden_size: int

    def initial_state(self, batch: int) -> CoreState:
        """The zero state for ``batch`` environments (the layout of this kind's state)."""
        raise NotImplementedError

    def output(self, state: CoreState) -> torch.Tensor:
        """What the layers above see: [B, hidden_size]."""
        return state[0][:, : self.hidden_size]


class LSTMCore(nn.LSTMCell, RecurrentCore):
    """:class:`torch.nn.LSTMCell` as a core: state (h, c), each [B, hidden_size].

    A subclass, not a wrapper, so its parameters keep ``nn.LSTMCell``'s names (``weight_ih``, …)
    and the checkpoints of existing runs still load.
    """

    def initial_state(self, batch: int) -> CoreState:
        zeros = torch.zeros(batch, self.hidden_size)
        return zeros, zeros.clone()


def is_recurrent(module: nn.Module) -> bool:
    """``module`` is a recurrent core, or one of torch's own recurrent modules."""
    return isinstance(module, RecurrentCore | nn.RNNCellBase | nn.RNNBase)


def zero_state(cell: RecurrentCore | None, batch: int) -> CoreState | None:
    """Zero state of ``cell`` for ``batch`` environments, or ``None`` without a core."""
    return None if cell is None else cell.initial_state(batch)


def unroll_core(
    cell: RecurrentCore, features: torch.Tensor, starts: torch.Tensor, state: CoreState | None
) -> tuple[torch.Tensor, CoreState]:
    """Run ``cell`` over time, resetting its state where an episode starts.

    features: [T, B, F]; starts: [T, B] bool -> outputs [T, B, H] (``cell.output``: a
    HyperLSTM's main LSTM), state after step T-1.
    """
    state = state if state is not None else cell.initial_state(features.shape[1])
    outputs = []
    for x, start in zip(features, starts, strict=True):
        keep = (~start).to(state[0].dtype).unsqueeze(1)  # [B, 1]
        state = tuple(cell(x, tuple(part * keep for part in state)))
        outputs.append(cell.output(state))
    return torch.stack(outputs), state
