"""modules/cores.py and modules/recurrent.py: the core-kind registry, specs, the LSTM core's
unchanged parameter names and steps, and what counts as recurrent."""

import pickle

import pytest
import torch
from torch import nn

from pathevo.agents.a3c import A3CConfig
from pathevo.modules.actor_critic import ActorCriticHead
from pathevo.modules.cores import (
    CORE_KINDS,
    DEFAULT_CORE,
    CoreKind,
    CoreSpec,
    core_kind,
    core_names,
    register_core,
)
from pathevo.modules.hyper_lstm import HyperLSTMCell
from pathevo.modules.recurrent import LSTMCore, is_recurrent, unroll_core, zero_state


def test_the_built_in_kinds_are_registered_with_their_settings():
    assert {"lstm", "hyperlstm"} <= set(core_names())
    assert core_names() == sorted(CORE_KINDS)
    assert core_kind("lstm").settings == ()
    assert core_kind("hyperlstm").settings == ("hyper_units", "hyper_embedding", "hyper_layer_norm")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("lstn", "unknown core kind 'lstn'; did you mean: lstm?"),
        ("HyperLSTM", "unknown core kind 'HyperLSTM'; did you mean: hyperlstm, lstm?"),
        ("gru", "unknown core kind 'gru'; choose one of hyperlstm, lstm"),
    ],
)
def test_unknown_kinds_are_one_line_errors_with_close_names(name, message):
    for make in (core_kind, CoreSpec, lambda n: A3CConfig(core=n)):
        with pytest.raises(ValueError) as error:
            make(name)
        assert str(error.value) == message


def test_a_setting_the_kind_does_not_take_is_an_error():
    with pytest.raises(ValueError, match="core kind 'lstm' has no setting 'hyper_units'; it takes"):
        CoreSpec("lstm", {"hyper_units": 8})
    with pytest.raises(ValueError, match="has no setting 'units'"):
        CoreSpec("hyperlstm", {"units": 8})


def test_specs_build_their_kind_and_pickle():
    spec = CoreSpec("hyperlstm", {"hyper_units": 5, "hyper_layer_norm": False})
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec and copy != DEFAULT_CORE
    cell = copy(4, 6)
    assert isinstance(cell, HyperLSTMCell)
    assert (cell.hidden_size, cell.hyper_units, cell.cell_norm) == (6, 5, None)
    assert isinstance(DEFAULT_CORE(4, 6), LSTMCore) and CoreSpec("lstm") == DEFAULT_CORE


def test_a3c_config_passes_the_fields_its_kind_reads():
    assert A3CConfig().core_spec() == DEFAULT_CORE
    cfg = A3CConfig(core="hyperlstm", hyper_units=6, hyper_embedding=3, hyper_layer_norm=False)
    expected = {"hyper_units": 6, "hyper_embedding": 3, "hyper_layer_norm": False}
    assert cfg.core_spec() == CoreSpec("hyperlstm", expected)


def test_registering_a_kind_replaces_one_of_its_name(monkeypatch):
    monkeypatch.setitem(CORE_KINDS, "lstm", CORE_KINDS["lstm"])  # restored after the test
    kind = CoreKind("lstm", "an LSTM without settings", LSTMCore)
    assert register_core(kind) is kind and core_kind("lstm") is kind


def test_the_lstm_core_keeps_nn_lstmcell_parameter_names_for_old_checkpoints():
    """Run directories written before cores were registered hold ``lstm.weight_ih``, …"""
    head = ActorCriticHead(4, 2, 8)
    assert isinstance(head.lstm, nn.LSTMCell)
    assert set(head.state_dict()) == {
        "lstm.weight_ih", "lstm.weight_hh", "lstm.bias_ih", "lstm.bias_hh",
        "policy.weight", "policy.bias", "value.weight", "value.bias",
    }  # fmt: skip
    old = nn.LSTMCell(4, 8)
    head.lstm.load_state_dict(old.state_dict())
    hyper = ActorCriticHead(4, 2, 8, core=CoreSpec("hyperlstm"))
    names = {name for name in hyper.state_dict() if name.startswith("lstm.")}
    assert names == {f"lstm.{name}" for name in HyperLSTMCell(4, 8).state_dict()}


def test_unrolling_the_lstm_core_steps_nn_lstmcell_with_resets():
    torch.manual_seed(0)
    cell = LSTMCore(3, 5)
    plain = nn.LSTMCell(3, 5)
    plain.load_state_dict(cell.state_dict())
    features, starts = torch.randn(4, 2, 3), torch.zeros(4, 2, dtype=torch.bool)
    starts[2, 1] = True
    outputs, (h, c) = unroll_core(cell, features, starts, None)
    expected_h, expected_c = torch.zeros(2, 5), torch.zeros(2, 5)
    for t in range(4):
        keep = (~starts[t]).float().unsqueeze(1)
        expected_h, expected_c = plain(features[t], (expected_h * keep, expected_c * keep))
        assert torch.equal(outputs[t], expected_h)
    assert torch.equal(h, expected_h) and torch.equal(c, expected_c)
    assert zero_state(None, 3) is None
    assert [part.shape for part in zero_state(cell, 3)] == [(3, 5), (3, 5)]


def test_what_counts_as_recurrent():
    for module in (LSTMCore(2, 3), HyperLSTMCell(2, 3), nn.GRUCell(2, 3), nn.LSTM(2, 3)):
        assert is_recurrent(module)
    assert not is_recurrent(nn.Linear(2, 3))
