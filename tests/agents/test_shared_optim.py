"""Shared optimisers: the paper's update rules, shared state, and the fresh-gradient hand-off."""

import copy

import pytest
import torch

from pathevo.agents.a3c import (
    A3CConfig,
    A3CNet,
    WorkerSpec,
    a3c_gradients,
    a3c_worker,
    collect_rollout,
)
from pathevo.agents.env_batch import EnvBatch
from pathevo.agents.processes import WorkerGroup
from pathevo.agents.shared_optim import (
    SharedAdam,
    SharedRMSprop,
    apply_gradients,
    make_shared_optimizer,
)


def test_shared_rmsprop_follows_the_paper_rule_with_fresh_gradients():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = SharedRMSprop([param], lr=0.1, alpha=0.9, eps=0.1)
    g1, g2 = torch.tensor([0.5, 1.0]), torch.tensor([-2.0, 0.25])
    apply_gradients([param], [g1], optimizer)
    square = 0.1 * g1**2
    expected = torch.tensor([1.0, -2.0]) - 0.1 * g1 / (square + 0.1).sqrt()
    assert torch.allclose(param.detach(), expected)
    assert param.grad is None
    apply_gradients([param], [g2], optimizer)  # must use g2 alone: not g1, not g1 + g2
    square = 0.9 * square + 0.1 * g2**2
    expected = expected - 0.1 * g2 / (square + 0.1).sqrt()
    assert torch.allclose(param.detach(), expected)


def test_shared_adam_matches_torch_adam():
    torch.manual_seed(0)
    mine = torch.nn.Parameter(torch.randn(5))
    reference = torch.nn.Parameter(mine.detach().clone())
    shared = SharedAdam([mine], lr=0.01)
    adam = torch.optim.Adam([reference], lr=0.01, foreach=False)
    for _ in range(3):
        grad = torch.randn(5)
        apply_gradients([mine], [grad], shared)
        reference.grad = grad.clone()
        adam.step()
    assert torch.allclose(mine, reference, atol=1e-7, rtol=0)


@pytest.mark.parametrize("name", ["rmsprop", "adam"])
def test_state_is_in_shared_memory_and_survives_loading(name):
    model = torch.nn.Linear(3, 2)
    optimizer = make_shared_optimizer(name, model.parameters(), lr=1e-3)
    tensors = [v for state in optimizer.state.values() for v in state.values()]
    assert tensors and all(t.is_shared() for t in tensors)
    optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    optimizer.share_memory()
    tensors = [v for state in optimizer.state.values() for v in state.values()]
    assert all(t.is_shared() for t in tensors)


def test_unknown_optimizer_is_a_user_error():
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_shared_optimizer("sgd", torch.nn.Linear(2, 2).parameters(), lr=1e-3)


def _spec(model, optimizer, worker_queue, stop, budget):
    cfg = A3CConfig(t_max=5, optimizer="rmsprop", lr=0.01, hidden=16, log_every=1)
    steps = torch.zeros(1, dtype=torch.long).share_memory_()
    return WorkerSpec(
        "CartPole-v1", 3, 1, cfg, model, optimizer, steps, budget, stop, worker_queue,
        torch.full((1,), 0.01),
    )  # fmt: skip


def test_spawned_worker_moves_shared_parameters_by_exactly_its_fresh_gradient_steps():
    """A worker process does two updates; the parent replays them from the same seeds with the
    building blocks (rollout, loss gradients, the RMSProp rule written out) and must find the
    shared parameters bitwise where those two steps put them: no stale, no accumulated grads."""
    torch.manual_seed(0)
    model = A3CNet((4,), 2, hidden=16)
    model.share_memory()
    optimizer = make_shared_optimizer("rmsprop", model.parameters(), lr=0.01)
    replay = copy.deepcopy(model)
    with WorkerGroup() as group:
        spec = _spec(model, optimizer, group.queue, group.stop, budget=10)
        group.start(a3c_worker, [(0, spec)])
        updates = [m for m in group.messages() if m["kind"] == "update"]
    assert len(updates) == 2

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the worker's setting: same kernels, same bits
    try:
        torch.manual_seed(spec.seed)
        envs = EnvBatch("CartPole-v1", spec.env_seeds(0))
        params = list(replay.parameters())
        squares = [torch.zeros_like(p) for p in params]
        for _ in range(2):
            rollout, _ = collect_rollout(replay, envs, spec.cfg.t_max, None)
            grads, _ = a3c_gradients(replay, params, rollout, spec.cfg)
            with torch.no_grad():
                for param, grad, square in zip(params, grads, squares, strict=True):
                    square.mul_(0.99).addcmul_(grad, grad, value=0.01)
                    param.addcdiv_(grad, square.add(0.1).sqrt_(), value=-0.01)
    finally:
        torch.set_num_threads(threads)
    for shared, expected in zip(model.parameters(), params, strict=True):
        assert torch.equal(shared, expected)
