"""PathNet-A3C: the library for each observation kind, path-only training, frozen modules,
an LSTM-core worker on every Labyrinth level."""

import copy
import math
import queue

import pytest
import torch

from pathevo.agents.a3c import A3CConfig, WorkerSpec
from pathevo.agents.pathnet_a3c import (
    PathNetA3C,
    PathNetA3CConfig,
    PathNetWorkerSpec,
    common_input_shape,
    pathnet_library,
    pathnet_worker,
)
from pathevo.agents.shared_optim import make_shared_optimizer
from pathevo.envs.labyrinth import LABYRINTH_IDS
from pathevo.envs.labyrinth.doom import TASKS
from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.evolution.transfer import begin_transfer

SMALL = PathNetA3CConfig(layers=2, modules=4, active=2, units=16, episodes_per_evaluation=2)


def test_libraries_for_vectors_grids_and_atari_frames():
    vector = pathnet_library((4,), SMALL)
    assert vector.output_size == 16 and vector.num_layers == 2
    grid = pathnet_library((7, 10, 10), PathNetA3CConfig())
    assert grid.layers[0].kernel_size == 3 and grid.output_size == 50
    atari = pathnet_library((4, 84, 84), PathNetA3CConfig())
    assert [(layer.kernel_size, layer.stride) for layer in atari.layers[:3]] == [
        (8, 4), (4, 2), (3, 1),
    ]  # fmt: skip
    assert all(layer.out_channels == 8 for layer in atari.layers[:3])
    with pytest.raises(ValueError, match="at most 4 layers"):
        pathnet_library((4, 84, 84), PathNetA3CConfig(layers=5))


def test_common_input_shape_pads_channels_only():
    assert common_input_shape((4, 10, 10), (6, 10, 10)) == (6, 10, 10)
    assert common_input_shape((4,), (6,)) == (6,)
    with pytest.raises(ValueError, match="differ"):
        common_input_shape((4, 10, 10), (4, 84, 84))


def test_sampled_learning_rates_are_log_uniform_in_range():
    cfg = PathNetA3CConfig(sample_lr=True)
    rates = cfg.learning_rates(400, lr=7e-4, seed=0)
    assert rates.min() >= 1e-4 and rates.max() <= 1e-2
    assert torch.log10(rates).mean().item() == pytest.approx(-3.0, abs=0.15)
    assert PathNetA3CConfig().learning_rates(3, 7e-4, 0).tolist() == [7e-4] * 3


def run_one_worker(
    model, optimizer, population, task, budget=300, evolve=True, env_id="CartPole-v1", cfg=None
):
    cfg = cfg or A3CConfig(t_max=10, envs_per_worker=2, optimizer="adam", lr=0.01, log_every=1)
    messages = queue.Queue()
    spec = WorkerSpec(
        env_id, 0, 2, cfg, model, optimizer, torch.zeros(2, dtype=torch.long), budget,
        torch.tensor(False), messages, torch.full((2,), 0.01),
    )  # fmt: skip
    threads = torch.get_num_threads()
    try:
        pathnet_worker(0, PathNetWorkerSpec(spec, population, SMALL, task, evolve))
    finally:
        torch.set_num_threads(threads)
    return [messages.get() for _ in range(messages.qsize())]


def test_worker_trains_only_its_path_and_the_task_head():
    torch.manual_seed(0)
    model = PathNetA3C(pathnet_library((4,), SMALL), (4,))
    model.add_task("cartpole", 2)
    model.share_memory()
    before = copy.deepcopy(model.state_dict())
    optimizer = make_shared_optimizer("adam", model.parameters(), 0.01)
    population = SharedPopulation.create([[0, 1, 2, 3], [3, 3, 3, 3]])
    run_one_worker(model, optimizer, population, "cartpole", evolve=False)
    for index, layer in enumerate(model.library.layers):
        on_path = {0, 1} if index == 0 else {2, 3}
        for module in range(4):
            same = torch.equal(
                layer.weights[module], before[f"library.layers.{index}.weights.{module}"]
            )
            assert same != (module in on_path), (index, module)
    head = model.heads["cartpole"]
    assert not torch.equal(head.policy.weight, before["heads.heads.cartpole.policy.weight"])


def test_frozen_modules_stay_bitwise_identical_under_the_shared_optimizer():
    """After transfer, training on B with a shared Adam that carries A's momentum must not move
    A's frozen path by a single bit, while B's free modules learn."""
    torch.manual_seed(1)
    model = PathNetA3C(pathnet_library((4,), SMALL), (4,))
    model.add_task("a", 2)
    model.share_memory()
    optimizer = make_shared_optimizer("adam", model.parameters(), 0.01)
    population = SharedPopulation.create([[0, 1, 0, 1], [2, 3, 2, 3]])
    run_one_worker(model, optimizer, population, "a")  # builds momentum on modules 0, 1
    path_a = torch.tensor([[0, 1], [0, 1]])
    begin_transfer(model.library, path_a)
    model.add_task("b", 2)
    model.share_memory()
    optimizer.add_param_group({"params": list(model.heads["b"].parameters())})
    optimizer.share_memory()
    frozen = [
        (layer.stacked("weights")[:2], layer.stacked("biases")[:2])
        for layer in model.library.layers
    ]
    free = model.library.layers[0].stacked("weights")[2]
    population = SharedPopulation.create([[0, 2, 1, 2], [1, 3, 0, 3]])
    messages = run_one_worker(model, optimizer, population, "b", budget=600)
    for (weight, bias), layer in zip(frozen, model.library.layers, strict=True):
        assert torch.equal(weight, layer.stacked("weights")[:2])
        assert torch.equal(bias, layer.stacked("biases")[:2])
    assert not torch.equal(free, model.library.layers[0].weights[2])
    assert any(m["kind"] == "tournament" for m in messages)
    assert not math.isnan(float(population.fitness[0]))


@pytest.mark.parametrize("env_id", LABYRINTH_IDS)
def test_lstm_worker_smoke_run_on_every_labyrinth_level(env_id, tmp_path, monkeypatch):
    """A3C with an LSTM core on each level's pixels: updates land, losses are finite."""
    monkeypatch.chdir(tmp_path)  # the engine makes a _vizdoom/ directory in the working dir
    torch.manual_seed(0)
    model = PathNetA3C(pathnet_library((4, 84, 84), SMALL), (4, 84, 84), lstm=16)
    model.add_task(env_id, len(TASKS[env_id.split("-")[1]].actions))
    model.share_memory()
    before = copy.deepcopy(model.heads[env_id].state_dict())
    optimizer = make_shared_optimizer("rmsprop", model.parameters(), 1e-3)
    population = SharedPopulation.create([[0, 1, 2, 3], [1, 2, 3, 0]])
    cfg = A3CConfig(t_max=8, envs_per_worker=1, lstm=16, log_every=1)
    messages = run_one_worker(
        model, optimizer, population, env_id, budget=24, env_id=env_id, cfg=cfg
    )
    updates = [m for m in messages if m["kind"] == "update"]
    assert len(updates) == 3
    assert all(math.isfinite(m[key]) for m in updates for key in ("policy_loss", "value_loss"))
    lstm = model.heads[env_id].lstm
    assert not torch.equal(lstm.weight_hh, before["lstm.weight_hh"])
