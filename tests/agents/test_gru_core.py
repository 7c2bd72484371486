"""A new recurrent core kind is one class plus a registration: a GRU (Cho et al. 2014,
arXiv:1406.1078) registered here, in the test, reaches every A3C agent through ``--a3c.core``,
unrolls with resets, trains, and is left dense by pruning, with no library code changed."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch
from torch import nn

from pathevo.agents.a3c import A3CConfig, A3CNet, a3c_gradients, collect_rollout
from pathevo.agents.env_batch import EnvBatch
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.registry import get_agent
from pathevo.modules.cores import CORE_KINDS, CoreKind
from pathevo.modules.pruning import (
    head_targets,
    magnitude_prune,
    network_targets,
    pruned_targets,
    sparsity,
)
from pathevo.modules.recurrent import CoreState, RecurrentCore
from pathevo.runners.plumbing.cli import parse_config


class TinyGRU(RecurrentCore):
    """A GRU step built from two ``nn.Linear`` s (which pruning would otherwise target)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.gates = nn.Linear(input_size + hidden_size, 2 * hidden_size)  # reset r, update z
        self.candidate = nn.Linear(input_size + hidden_size, hidden_size)

    def initial_state(self, batch: int) -> CoreState:
        return (torch.zeros(batch, self.hidden_size),)  # h only: no cell state

    def forward(self, x: torch.Tensor, state: CoreState) -> CoreState:
        # x: [B, in]; state (h,): [B, H] -> (h,): [B, H]
        (h,) = state
        r, z = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        return ((1 - z) * n + z * h,)


@pytest.fixture(autouse=True)
def gru(monkeypatch):
    """The registration a GRU file would make, undone after each test."""
    monkeypatch.setitem(CORE_KINDS, "gru", CoreKind("gru", "a GRU (Cho et al. 2014)", TinyGRU))


def settings() -> Any:
    """The agents' config sections, made after the fixture registered the kind."""

    class Settings:
        a3c = A3CConfig(hidden=16, lstm=6, core="gru")
        pathnet = PathNetA3CConfig(layers=2, modules=4, active=2, units=8)
        moe = MoEConfig(experts=4, expert_hidden=8)

    return Settings()


def _run(model: nn.Module, evolves_paths: bool, obs, starts, state):
    if evolves_paths:
        return model(obs, starts, state, path=torch.tensor([[0, 1], [2, 3]]), task="task")
    return model(obs, starts, state)


@pytest.mark.parametrize("name", ["a3c", "a3c-pruned", "moe", "pathnet", "pathnet-moe"])
def test_every_agent_gets_a_registered_gru_and_unrolls_it_with_resets(name):
    torch.manual_seed(0)
    agent = get_agent(name)
    model = agent.build(settings(), (4,), 3)
    head = model.add_task("task", 3) if agent.evolves_paths else model.head
    assert isinstance(head.lstm, TinyGRU)
    model.eval()  # no gate noise: the two passes below must agree
    obs, starts = torch.rand(5, 2, 4), torch.zeros(5, 2, dtype=torch.bool)
    starts[3, 0] = True  # env 0 starts a new episode at t = 3
    warm = (torch.randn(2, 6),)
    logits, values, state = _run(model, agent.evolves_paths, obs, starts, warm)
    assert logits.shape == (5, 2, 3) and values.shape == (5, 2)
    assert len(state) == 1 and state[0].shape == (2, 6)
    fresh, _, _ = _run(model, agent.evolves_paths, obs[3:, :1], starts[3:, :1], None)
    torch.testing.assert_close(logits[3:, :1], fresh)  # the reset cleared the warm state
    (logits.sum() + values.sum()).backward()
    assert head.lstm.gates.weight.grad.abs().sum() > 0
    pickle.loads(pickle.dumps(model))


def test_rollouts_and_the_batched_loss_pass_carry_a_one_tensor_state():
    torch.manual_seed(0)
    cfg = A3CConfig(hidden=16, lstm=6, core="gru")
    factory = pickle.loads(pickle.dumps(cfg.head_factory()))
    net = A3CNet((4,), 2, hidden=16, lstm=6, head_factory=factory)
    envs = EnvBatch("CartPole-v1", [0, 1, 2])
    rollout, state = collect_rollout(net, envs, t_max=60, state=net.initial_state(3))
    envs.close()
    assert rollout.dones.any()  # resets inside the rollout
    assert len(state) == 1 and state[0].shape == (3, 6) and not state[0].requires_grad
    grads, stats = a3c_gradients(net, list(net.parameters()), rollout, cfg)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert stats["grad_norm"] > 0


def test_pruning_leaves_a_registered_core_dense():
    torch.manual_seed(0)
    model = get_agent("a3c-pruned").build(settings(), (4,), 3)
    core = model.head.lstm
    core_linears = [m for m in core.modules() if isinstance(m, nn.Linear)]
    assert len(core_linears) == 2  # what a hard-coded list of core classes would have pruned
    policy_value = [(model.head.policy, "weight"), (model.head.value, "weight")]
    assert head_targets(model) == policy_value and pruned_targets(model) == policy_value
    targets = network_targets(model)
    assert not {id(m) for m, _ in targets} & {id(m) for m in core_linears}
    before = {name: p.detach().clone() for name, p in core.named_parameters()}
    magnitude_prune(head_targets(model), 0.5)
    assert sparsity(head_targets(model)) > 0.4
    assert all(torch.equal(p, before[name]) for name, p in core.named_parameters())
    assert not any(name.endswith("_mask") for name, _ in core.named_buffers())


def test_the_a3c_flags_accept_and_check_the_registered_kinds():
    cfg = parse_config(A3CConfig, "test", ["--core", "gru", "--lstm", "8"])
    assert cfg.core == "gru" and cfg.head_factory()(4, 2, cfg.lstm).lstm.hidden_size == 8
    with pytest.raises(ValueError, match="unknown core kind 'gur'; did you mean: gru?"):
        parse_config(A3CConfig, "test", ["--core", "gur"])
