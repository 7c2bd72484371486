"""Models answer how a task is scored (``task_logits``) and whether they route paths
(``library``); specs answer their A3C part (``spec.a3c``): no caller asks which kind it holds."""

import pytest
import torch

from pathevo.agents.a3c import A3CConfig, WorkerSpec
from pathevo.agents.continual import PathClassifier, eval_outputs
from pathevo.agents.lottery_agents import classifier, prune_targets
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.registry import get_agent
from pathevo.modules.library import linear_library


class Settings:
    a3c = A3CConfig(hidden=16, lstm=4)
    pathnet = PathNetA3CConfig(layers=2, modules=4, active=2, units=8)
    moe = MoEConfig(experts=4, expert_hidden=8)


@pytest.mark.parametrize("name", ["a3c", "moe", "pathnet", "pathnet-moe"])
def test_task_logits_are_one_step_from_a_fresh_state(name):
    torch.manual_seed(0)
    agent = get_agent(name)
    model = agent.build(Settings(), (4,), 3).eval()
    x, starts = torch.rand(5, 4), torch.zeros(1, 5, dtype=torch.bool)
    if agent.evolves_paths:
        model.add_task("task", 3)
        path = torch.tensor([[0, 1], [0, 1]])
        expected = model(x.unsqueeze(0), starts, None, path=path, task="task")[0][0]
        assert model.library is not None
        assert len(prune_targets(model, "library")) > len(prune_targets(model, "heads"))
    else:
        path, expected = None, model(x.unsqueeze(0), starts, None)[0][0]
        assert model.library is None
        with pytest.raises(ValueError, match="needs a path agent"):
            prune_targets(model, "library")
    assert torch.equal(model.task_logits(x, path=path, task="task"), expected)
    assert torch.equal(classifier(model, "task", 2)(x), expected)  # modules 0, 1 everywhere


def test_a_path_classifier_scores_with_its_forward():
    torch.manual_seed(0)
    model = PathClassifier(linear_library(4, 8, 2, 3))
    model.add_task("t")
    x, path = torch.rand(6, 4), torch.tensor([[0, 2], [1, 2]])
    assert torch.equal(eval_outputs(model, x, path, "t"), model(x, path=path, task="t"))


def test_a_worker_spec_is_its_own_a3c_part():
    spec = WorkerSpec("CartPole-v1", 0, 1, A3CConfig(), None, None, None, 0, None, None, None)
    assert spec.a3c is spec
