"""The agent registry: names, suggestions, and every agent's network through one interface."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.pathnet_a3c import PathNetA3C, PathNetA3CConfig
from pathevo.agents.registry import agent_names, get_agent
from pathevo.modules.moe import MoEModuleLayer


class Settings:
    a3c = A3CConfig(hidden=16)
    pathnet = PathNetA3CConfig(layers=2, modules=4, active=2, units=8)
    moe = MoEConfig(experts=4, expert_hidden=8)


def test_names_and_kinds() -> None:
    assert {"a3c", "pathnet", "moe", "pathnet-moe"} <= set(agent_names())
    assert set(agent_names(evolves_paths=True)) >= {"pathnet", "pathnet-moe"}
    assert "a3c" not in agent_names(evolves_paths=True)


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("pathnet_moe", None, "did you mean: pathnet-moe"),
        ("MOE", None, "did you mean: moe"),
        ("a3c", True, "unknown path-evolving agent 'a3c'"),
        ("zzz", None, "choose one of a3c"),
    ],
)
def test_unknown_names_get_suggestions(name: str, kind: bool | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_agent(name, evolves_paths=kind)


@pytest.mark.parametrize("name", ["a3c", "pathnet", "moe", "pathnet-moe"])
@pytest.mark.parametrize("obs_shape", [(4,), (4, 10, 10)])
def test_every_agent_builds_acts_and_reports_its_aux_loss(name, obs_shape) -> None:
    agent = get_agent(name)
    model = agent.build(Settings(), obs_shape, 3)
    obs, starts = torch.rand(2, 5, *obs_shape), torch.zeros(2, 5, dtype=torch.bool)
    if agent.evolves_paths:
        assert isinstance(model, PathNetA3C)
        model.add_task("task", 3)
        path = torch.tensor([[0, 1], [2, 3]])
        logits, values, _ = model(obs, starts, None, path=path, task="task")
        params = model.path_parameters(path, "task")
    else:
        logits, values, _ = model(obs, starts, None)
        params = list(model.parameters())
    assert logits.shape == (2, 5, 3) and values.shape == (2, 5)
    aux = model.take_aux_loss()
    assert (aux is not None) == ("moe" in name)
    loss = logits.sum() + values.sum() + (aux if aux is not None else 0.0)
    trainable = [p for p in params if p.requires_grad]
    grads = dict(zip(map(id, trainable), torch.autograd.grad(loss, trainable, allow_unused=True),
                     strict=True))  # fmt: skip
    assert any(g is not None for g in grads.values())
    gates = [m for m in model.modules() if isinstance(m, MoEModuleLayer)]
    for layer in gates:  # the MoE agents' gates learn, through the loss and the aux loss
        task = "task" if agent.evolves_paths else None
        assert grads[id(layer.task_parameters(task)[0])].abs().sum() > 0


def test_pathnet_moe_trains_its_tasks_gate_and_only_the_paths_experts() -> None:
    model = get_agent("pathnet-moe").build(Settings(), (4,), 2)
    model.add_task("A", 2)
    moe = model.library.layers[-1]
    assert isinstance(moe, MoEModuleLayer) and moe.num_modules == 4
    params = {id(p) for p in model.path_parameters(torch.tensor([[0, 1], [1, 3]]), "A")}
    assert id(moe.gates["A"]) in params and id(moe.noise_gates["A"]) in params
    assert id(moe.w1[3]) in params and id(moe.w1[2]) not in params


@dataclasses.dataclass
class Inner:
    lr: float = 0.1
    steps: int = 5

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError("lr must be positive")


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    workers: int = 2


def test_an_agents_defaults_configure_a_copy_except_the_fields_given() -> None:
    agent = dataclasses.replace(get_agent("a3c"), defaults={"inner.lr": 0.5, "workers": 8})
    settings = Outer()
    assert agent.configure(settings) == Outer(Inner(lr=0.5), workers=8)
    assert agent.configure(settings, given={"workers"}) == Outer(Inner(lr=0.5), workers=2)
    assert settings == Outer()  # a copy: the settings passed in are left alone
    assert agent.defaults_text() == "inner.lr=0.5, workers=8"
    assert get_agent("a3c").configure(settings) is settings  # no defaults: nothing to do


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ({"inner.lrr": 0.5}, "agent default 'inner.lrr': Inner has no field 'lrr'"),
        ({"workers.size": 1}, "agent default 'workers.size': int has no field 'size'"),
        ({"inner.lr": -1.0}, "lr must be positive"),  # checked as on construction
    ],
)
def test_a_bad_agent_default_is_a_one_line_error(defaults, message) -> None:
    agent = dataclasses.replace(get_agent("a3c"), defaults=defaults)
    with pytest.raises(ValueError, match=re.escape(message)):
        agent.configure(Outer())
