"""HyperLSTM: an LSTM whose weight rows a small LSTM rescales at every step.

Ha, Dai, Le 2016, "HyperNetworks", arXiv:1609.09106, section 3.2. A small "hyper" LSTM reads
x̂_t = [h_{t-1}; x_t] and from its output ĥ_t emits, per gate y ∈ {i, f, g, o}, three small
embeddings

    z_h^y = W_ĥh^y ĥ_t + b_ĥh^y,   z_x^y = W_ĥx^y ĥ_t + b_ĥx^y,   z_b^y = W_ĥb^y ĥ_t,

each projected linearly to a vector of the main LSTM's size,

    d_h^y = W_hz^y z_h^y,   d_x^y = W_xz^y z_x^y,   b^y = W_bz^y z_b^y + b_0^y,

and the main LSTM's gate pre-activation is d_h^y ⊙ (W_h^y h_{t-1}) + d_x^y ⊙ (W_x^y x_t) + b^y:
the rows of W_h and W_x are scaled every step; no weight matrix is generated.

Initialisation (the authors' reference implementation): W_ĥh, W_ĥx = 0 and b_ĥh, b_ĥx = 1, so
z = 1; W_hz, W_xz = 1/N_z, so d = 1 (the reference uses 0.1/N_z because it layer-normalises the
products and 0.1 is its norm gain); W_ĥb ~ N(0, 0.01²) and W_bz = 0, so b = b_0. At
initialisation the main part of the cell therefore *is* a plain LSTM with weights W_x, W_h, b_0,
whatever the hyper LSTM's state: training starts from an ordinary LSTM and learns to modulate
it. (The paper's equations write ĥ_{t-1} in the z's; the reference code, followed here, uses the
hyper LSTM's output of the current step, which has seen x_t.)

Layer norm (per gate on the pre-activations and on c_t before its tanh, as in the paper's
language-model runs and its reference code) is on by default: measured on CartPole with A3C
(tests/agents/test_hyper_lstm_a3c.py), the layer-normalised HyperLSTM solved the task in
15k-37k steps at three seeds, without it 141k steps at one seed and not within 150k at another.
Without layer norm the initialisation above makes the cell exactly a plain LSTM; with it, a
layer-normalised LSTM.

State: like :class:`torch.nn.LSTMCell` the cell maps ``x [B, in]`` and ``(h, c)`` to ``(h, c)``,
but ``h`` and ``c`` are ``[B, hidden + hyper_units]``, the main LSTM's followed by the hyper
LSTM's (``state_size``); the output is the main part, ``h[:, :hidden_size]``. Registered as
the ``hyperlstm`` core kind in :mod:`pathevo.modules.cores`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pathevo.modules.recurrent import CoreState, RecurrentCore

GATES = 4
"""Gates of an LSTM, in PyTorch's order: input, forget, cell candidate, output."""


class HyperLSTMCell(RecurrentCore):
    """A HyperLSTM step with :class:`torch.nn.LSTMCell`'s interface (wider state, see module)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        hyper_units: int = 32,
        hyper_embedding: int = 4,
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        if min(input_size, hidden_size, hyper_units, hyper_embedding) <= 0:
            raise ValueError("a HyperLSTM needs positive input, hidden, hyper and embedding sizes")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.hyper_units = hyper_units
        self.hyper_embedding = hyper_embedding
        self.state_size = hidden_size + hyper_units
        width, gates = hidden_size, GATES * hidden_size
        # The hyper LSTM reads [h_{t-1}; x_t].
        self.hyper = nn.LSTMCell(hidden_size + input_size, hyper_units)
        # Main LSTM: W_x [4H, in], W_h [4H, H], b_0 [4H] (gates i, f, g, o stacked).
        self.weight_x = nn.Parameter(torch.empty(gates, input_size))
        self.weight_h = nn.Parameter(torch.empty(gates, width))
        self.bias = nn.Parameter(torch.empty(gates))
        # ĥ_t -> z per gate: [4*N_z] (W_ĥh, b_ĥh; W_ĥx, b_ĥx; W_ĥb without bias).
        self.z_h = nn.Linear(hyper_units, GATES * hyper_embedding)
        self.z_x = nn.Linear(hyper_units, GATES * hyper_embedding)
        self.z_b = nn.Linear(hyper_units, GATES * hyper_embedding, bias=False)
        # z -> d per gate: W_hz, W_xz, W_bz, each [4, H, N_z].
        self.d_h = nn.Parameter(torch.empty(GATES, width, hyper_embedding))
        self.d_x = nn.Parameter(torch.empty(GATES, width, hyper_embedding))
        self.d_b = nn.Parameter(torch.empty(GATES, width, hyper_embedding))
        self.gate_norms = (
            nn.ModuleList(nn.LayerNorm(width) for _ in range(GATES)) if layer_norm else None
        )
        self.cell_norm = nn.LayerNorm(width) if layer_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation: at the start the cell is a plain LSTM (see module)."""
        bound = 1.0 / math.sqrt(self.hidden_size)  # as nn.LSTMCell
        for weight in (self.weight_x, self.weight_h, self.bias):
            nn.init.uniform_(weight, -bound, bound)
        self.hyper.reset_parameters()
        for z in (self.z_h, self.z_x):
            nn.init.zeros_(z.weight)
            nn.init.ones_(z.bias)
        nn.init.normal_(self.z_b.weight, std=0.01)
        nn.init.constant_(self.d_h, 1.0 / self.hyper_embedding)
        nn.init.constant_(self.d_x, 1.0 / self.hyper_embedding)
        nn.init.zeros_(self.d_b)

    def initial_state(self, batch: int) -> CoreState:
        """Zero (h, c), each [B, hidden + hyper_units]: the main LSTM's, then the hyper LSTM's."""
        zeros = torch.zeros(batch, self.state_size)
        return zeros, zeros.clone()

    def _project(self, z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # z: [B, 4*N_z], weight: [4, H, N_z] -> d: [B, 4H], gate by gate
        z = z.view(z.shape[0], GATES, self.hyper_embedding)
        return torch.einsum("bge,ghe->bgh", z, weight).flatten(1)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [B, in]; state h, c: [B, H + N_h] ([main | hyper]) -> h, c: [B, H + N_h]
        h, c = state
        h_main, h_hyper = h.split([self.hidden_size, self.hyper_units], dim=1)
        c_main, c_hyper = c.split([self.hidden_size, self.hyper_units], dim=1)
        h_hyper, c_hyper = self.hyper(torch.cat([h_main, x], dim=1), (h_hyper, c_hyper))
        d_h = self._project(self.z_h(h_hyper), self.d_h)  # [B, 4H]
        d_x = self._project(self.z_x(h_hyper), self.d_x)  # [B, 4H]
        bias = self._project(self.z_b(h_hyper), self.d_b) + self.bias  # [B, 4H]
        gates = d_h * F.linear(h_main, self.weight_h) + d_x * F.linear(x, self.weight_x) + bias
        chunks = list(gates.chunk(GATES, dim=1))  # 4 x [B, H]
        if self.gate_norms is not None:
            chunks = [norm(chunk) for norm, chunk in zip(self.gate_norms, chunks, strict=True)]
        i, f, g, o = chunks
        c_main = torch.sigmoid(f) * c_main + torch.sigmoid(i) * torch.tanh(g)
        shown = self.cell_norm(c_main) if self.cell_norm is not None else c_main
        h_main = torch.sigmoid(o) * torch.tanh(shown)
        return torch.cat([h_main, h_hyper], dim=1), torch.cat([c_main, c_hyper], dim=1)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, hyper_units={self.hyper_units}, "
            f"hyper_embedding={self.hyper_embedding}, layer_norm={self.cell_norm is not None}"
        )
