"""modules/hyper_lstm.py: the HyperLSTM step against the paper's equations, its initialisation,
episode resets through unroll_core, and gradients into the hyper network."""

import pickle

import pytest
import torch
from torch import nn

from pathevo.modules.actor_critic import ActorCriticHead
from pathevo.modules.cores import CoreSpec
from pathevo.modules.hyper_lstm import HyperLSTMCell
from pathevo.modules.moe_head import MoEActorCriticHead
from pathevo.modules.recurrent import unroll_core, zero_state

IN, HIDDEN, HYPER, EMBED = 5, 6, 7, 3


def perturbed_cell(layer_norm: bool = False) -> HyperLSTMCell:
    """A cell whose every parameter is random (the initialisation's zeros and ones would hide
    mistakes in the equations)."""
    torch.manual_seed(0)
    cell = HyperLSTMCell(IN, HIDDEN, HYPER, EMBED, layer_norm=layer_norm)
    with torch.no_grad():
        for parameter in cell.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return cell


def layer_norm(v: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    return (v - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def reference_step(cell: HyperLSTMCell, x, h, c, h_hat, c_hat):
    """One HyperLSTM step written out from Ha et al. 2016, section 3.2, gate by gate."""
    sig, tanh = torch.sigmoid, torch.tanh
    # The hyper LSTM on x̂_t = [h_{t-1}; x_t].
    x_hat = torch.cat([h, x], dim=1)
    hyper = cell.hyper
    W_i, W_h, b = hyper.weight_ih, hyper.weight_hh, hyper.bias_ih + hyper.bias_hh
    pre = [x_hat @ W_i[k * HYPER : (k + 1) * HYPER].T + h_hat @ W_h[k * HYPER : (k + 1) * HYPER].T
           + b[k * HYPER : (k + 1) * HYPER] for k in range(4)]  # fmt: skip
    c_hat = sig(pre[1]) * c_hat + sig(pre[0]) * tanh(pre[2])
    h_hat = sig(pre[3]) * tanh(c_hat)
    gates = []
    for y in range(4):  # i, f, g, o
        rows = slice(y * HIDDEN, (y + 1) * HIDDEN)
        emb = slice(y * EMBED, (y + 1) * EMBED)
        z_h = h_hat @ cell.z_h.weight[emb].T + cell.z_h.bias[emb]
        z_x = h_hat @ cell.z_x.weight[emb].T + cell.z_x.bias[emb]
        z_b = h_hat @ cell.z_b.weight[emb].T
        d_h = z_h @ cell.d_h[y].T  # W_hz z_h: [B, H]
        d_x = z_x @ cell.d_x[y].T
        bias = z_b @ cell.d_b[y].T + cell.bias[rows]
        gate = d_h * (h @ cell.weight_h[rows].T) + d_x * (x @ cell.weight_x[rows].T) + bias
        if cell.gate_norms is not None:
            gate = layer_norm(gate, cell.gate_norms[y])
        gates.append(gate)
    i, f, g, o = gates
    c = sig(f) * c + sig(i) * tanh(g)
    shown = layer_norm(c, cell.cell_norm) if cell.cell_norm is not None else c
    h = sig(o) * tanh(shown)
    return h, c, h_hat, c_hat


@pytest.mark.parametrize("norm", [False, True])
def test_cell_steps_equal_the_papers_equations(norm):
    cell = perturbed_cell(norm)
    torch.manual_seed(1)
    batch = 3
    h, c = torch.randn(batch, HIDDEN), torch.randn(batch, HIDDEN)
    h_hat, c_hat = torch.randn(batch, HYPER), torch.randn(batch, HYPER)
    state = torch.cat([h, h_hat], 1), torch.cat([c, c_hat], 1)
    for _ in range(4):
        x = torch.randn(batch, IN)
        state = cell(x, state)
        h, c, h_hat, c_hat = reference_step(cell, x, h, c, h_hat, c_hat)
        torch.testing.assert_close(state[0], torch.cat([h, h_hat], 1))
        torch.testing.assert_close(state[1], torch.cat([c, c_hat], 1))


def test_at_initialisation_the_main_part_is_a_plain_lstm_with_the_same_weights():
    """Without layer norm: z_h = z_x = 1, d = 1 and b = b_0, so the hyper state changes nothing
    yet and the main LSTM is nn.LSTMCell with W_x, W_h, b_0."""
    torch.manual_seed(0)
    cell = HyperLSTMCell(IN, HIDDEN, HYPER, EMBED, layer_norm=False)
    plain = nn.LSTMCell(IN, HIDDEN)
    with torch.no_grad():
        plain.weight_ih.copy_(cell.weight_x)
        plain.weight_hh.copy_(cell.weight_h)
        plain.bias_ih.copy_(cell.bias)
        plain.bias_hh.zero_()
    batch = 4
    h, c = torch.randn(batch, HIDDEN), torch.randn(batch, HIDDEN)
    state = (
        torch.cat([h, torch.randn(batch, HYPER)], 1),
        torch.cat([c, torch.randn(batch, HYPER)], 1),
    )
    for _ in range(5):
        x = torch.randn(batch, IN)
        state = cell(x, state)
        h, c = plain(x, (h, c))
        torch.testing.assert_close(state[0][:, :HIDDEN], h, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(state[1][:, :HIDDEN], c, rtol=1e-6, atol=1e-6)
    assert not torch.equal(state[0][:, HIDDEN:], torch.zeros(batch, HYPER))  # the hyper LSTM ran


@pytest.mark.parametrize("norm", [False, True])
def test_at_initialisation_the_hyper_state_does_not_change_the_main_lstm(norm):
    torch.manual_seed(0)
    cell = HyperLSTMCell(IN, HIDDEN, HYPER, EMBED, layer_norm=norm)
    x, h, c = torch.randn(3, IN), torch.randn(3, HIDDEN), torch.randn(3, HIDDEN)
    outputs = []
    for _ in range(2):
        hyper_h, hyper_c = torch.randn(3, HYPER), torch.randn(3, HYPER)
        new_h, new_c = cell(x, (torch.cat([h, hyper_h], 1), torch.cat([c, hyper_c], 1)))
        outputs.append((new_h[:, :HIDDEN], new_c[:, :HIDDEN], new_h[:, HIDDEN:]))
    (h1, c1, hyper1), (h2, c2, hyper2) = outputs
    torch.testing.assert_close(h1, h2, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(c1, c2, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(hyper1, hyper2)


def test_unroll_resets_the_whole_state_at_episode_starts():
    cell = perturbed_cell()
    torch.manual_seed(2)
    features = torch.randn(6, 2, IN)
    starts = torch.zeros(6, 2, dtype=torch.bool)
    starts[3, 0] = True  # env 0 starts a new episode at t = 3
    warm = tuple(torch.randn(2, cell.state_size) for _ in range(2))
    outputs, (h, c) = unroll_core(cell, features, starts, warm)
    assert outputs.shape == (6, 2, HIDDEN) and h.shape == c.shape == (2, HIDDEN + HYPER)
    fresh, _ = unroll_core(cell, features[3:, :1], starts[3:, :1], zero_state(cell, 1))
    torch.testing.assert_close(outputs[3:, :1], fresh)
    carried, _ = unroll_core(cell, features[3:, 1:], starts[3:, 1:], zero_state(cell, 1))
    assert not torch.allclose(outputs[3:, 1:], carried)  # env 1 carried its state


def test_gradients_reach_the_hyper_network():
    """At the paper's initialisation z_h, z_x ignore ĥ and d_b = 0, so the hyper LSTM's own
    weights get no gradient until the first update; after it every parameter gets one."""
    torch.manual_seed(0)
    cell = HyperLSTMCell(IN, HIDDEN, HYPER, EMBED)
    features = torch.randn(5, 3, IN)
    starts = torch.zeros(5, 3, dtype=torch.bool)
    optimiser = torch.optim.SGD(cell.parameters(), lr=0.1)

    def gradients() -> dict[str, torch.Tensor]:
        optimiser.zero_grad()
        outputs, _ = unroll_core(cell, features, starts, None)
        (outputs**2).sum().backward()
        return {name: p.grad for name, p in cell.named_parameters()}

    first = gradients()
    for name in ("z_h.weight", "z_h.bias", "z_x.weight", "d_h", "d_x", "d_b", "weight_h"):
        assert first[name].abs().sum() > 0, name
    assert first["hyper.weight_ih"].abs().sum() == 0
    optimiser.step()
    assert all(grad.abs().sum() > 0 for grad in gradients().values())


def test_heads_with_a_hyperlstm_core_expose_the_main_lstm_only():
    torch.manual_seed(0)
    core = CoreSpec("hyperlstm", {"hyper_units": HYPER, "hyper_embedding": EMBED})
    for head in (
        ActorCriticHead(IN, 3, HIDDEN, core=core),
        MoEActorCriticHead(
            IN, 3, HIDDEN, experts=4, core=CoreSpec("hyperlstm", {"hyper_units": HYPER})
        ),
    ):
        assert isinstance(head.lstm, HyperLSTMCell)
        state = head.initial_state(2)
        assert state[0].shape == (2, HIDDEN + HYPER)
        starts = torch.zeros(4, 2, dtype=torch.bool)
        logits, values, state = head(torch.randn(4, 2, IN), starts, state)
        assert logits.shape == (4, 2, 3) and values.shape == (4, 2)
        assert state[1].shape == (2, HIDDEN + HYPER)
        pickle.loads(pickle.dumps(head))
    assert ActorCriticHead(IN, 3, 0, core=CoreSpec("hyperlstm")).lstm is None  # no units: no core
    assert isinstance(CoreSpec()(IN, HIDDEN), nn.LSTMCell)


def test_bad_sizes_and_cores_are_value_errors():
    with pytest.raises(ValueError, match="positive"):
        HyperLSTMCell(IN, HIDDEN, hyper_units=0)
    with pytest.raises(ValueError, match="unknown core"):
        CoreSpec("gru")(IN, HIDDEN)
