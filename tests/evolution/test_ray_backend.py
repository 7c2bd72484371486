"""The Ray map backend on a real local Ray instance (and, slow, a two-node localhost cluster)."""

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from pathevo.agents.supervised import PathTrainer, SupervisedConfig
from pathevo.envs.digits import make_binary_task
from pathevo.evolution import ray_backend
from pathevo.evolution.backends import map_backend
from pathevo.evolution.config import EvoConfig
from pathevo.modules.library import linear_library
from pathevo.runners import hyperneat as runner
from tests.ray_cluster import free_port, needs_ray_cli

ROOT = Path(__file__).resolve().parents[2]

if os.environ.get("CI") == "true":
    import ray  # CI installs the ray extra: its Ray tests must run, never skip
else:
    ray = pytest.importorskip("ray")


def square(value: int) -> int:
    return value * value


def node_of(_: int) -> str:
    time.sleep(0.3)  # long enough that one node's CPU cannot take every task
    return ray.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance of 2 CPUs for the module (starting one takes seconds)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_maps_in_order_and_leaves_a_ray_it_did_not_start_running(local_ray):
    with map_backend("ray", workers=2) as map_fn:
        assert map_fn(square, range(7)) == [0, 1, 4, 9, 16, 25, 36]
    assert ray.is_initialized()


def test_an_address_that_does_not_answer_is_a_one_line_error_before_any_work(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ValueError, match=f"no Ray cluster answers at {address}") as error:
        runner.HyperNEATRunConfig(backend="ray", ray_address=address, run_dir=str(tmp_path / "r"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="host:port"):
        ray_backend.check_ray("nowhere")


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ValueError, match=r'pip install -e "\.\[ray\]"'):
        ray_backend.check_ray(None)


@pytest.mark.slow
@needs_ray_cli
def test_a_two_node_localhost_cluster_runs_tasks_on_both_nodes(on_two_nodes):
    """The backend joins a two-node cluster by address and tasks land on both nodes. In a
    process of its own, as a runner is: a process that used a local Ray instance before cannot
    fetch objects from a cluster it joins later."""
    script = (
        "import sys; from evolution.backends import map_backend\n"
        "from tests.evolution.test_ray_backend import node_of, square\n"
        "with map_backend('ray', workers=2, ray_address=sys.argv[1]) as map_fn:\n"
        "    assert map_fn(square, range(5)) == [0, 1, 4, 9, 16]\n"
        "    print(len(set(map_fn(node_of, range(12)))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, on_two_nodes], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "2", done.stdout


def small_trainer(seed: int = 0) -> PathTrainer:
    """A 2-layer library of 4 modules (N=2), a head, the 8x8 0-vs-1 task, 5 minibatches."""
    torch.manual_seed(seed)
    task = make_binary_task("digits/0v1", None, 8)
    library = linear_library(task.input_size, 6, num_layers=2, num_modules=4)
    library.freeze(torch.tensor([[3, 3], [3, 3]]), "earlier")  # module 3 of each layer frozen
    cfg = SupervisedConfig(minibatches=5, batch_size=8)
    return PathTrainer(library, nn.Linear(6, 2), task, cfg, layers=2, active=2)


def parameters_of(trainer: PathTrainer) -> dict[str, torch.Tensor]:
    modules = nn.ModuleDict({"library": trainer.library, "head": trainer.head})
    return {name: p.detach().clone() for name, p in modules.named_parameters()}


def test_a_training_evaluation_sends_back_what_it_trained_and_nothing_else():
    trainer, worker = small_trainer(), small_trainer()  # the driver's and a worker's copy
    genome = [0, 1, 1, 3]  # layer 1 also runs the frozen module 3
    start = parameters_of(trainer)
    fitness, deltas = ray_backend.train_and_diff(worker, genome, seed=11)
    assert 0.0 <= fitness[0] <= 1.0
    trained = {name.split(".", 1)[1] for name in deltas if name.startswith("library.")}
    assert trained == {"layers.0.weights.0", "layers.0.weights.1", "layers.0.biases.0",
                       "layers.0.biases.1", "layers.1.weights.1", "layers.1.biases.1"}  # fmt: skip
    ray_backend.apply_deltas(trainer, genome, deltas)
    after, reference = parameters_of(trainer), parameters_of(worker)
    for name, value in after.items():
        if name in deltas:  # start + (trained - start): the worker's values, to rounding
            torch.testing.assert_close(value, reference[name], rtol=0, atol=1e-6)
        else:  # frozen and unused modules: bitwise untouched
            assert torch.equal(value, start[name]), name
    # The evaluation's seed fixes its minibatches: the same seed, the same training.
    again = small_trainer()
    assert ray_backend.train_and_diff(again, genome, seed=11)[0] == fitness


def test_the_binary_tournament_trains_on_ray_and_the_driver_gets_both_contenders_training(
    local_ray,
):
    trainer, genomes = small_trainer(), [[0, 1, 0, 1], [1, 2, 1, 2]]  # share modules 1
    expected = small_trainer()
    seeds = random.Random(5)
    local = []
    for genome in genomes:  # each contender from the same start, as the Ray tasks train
        copy_ = small_trainer()
        local.append(ray_backend.train_and_diff(copy_, genome, seeds.getrandbits(63)))
    for genome, (_, deltas) in zip(genomes, local, strict=True):
        ray_backend.apply_deltas(expected, genome, deltas)
    with map_backend("ray", workers=2, seed=5) as map_fn:
        fitnesses = map_fn(trainer, genomes)
    assert fitnesses == [fitness for fitness, _ in local]
    for name, value in parameters_of(trainer).items():
        torch.testing.assert_close(value, parameters_of(expected)[name], rtol=0, atol=1e-6)
    assert not torch.equal(trainer.head.weight, small_trainer().head.weight)


def test_the_binary_digits_runner_learns_on_ray_as_it_does_serially(local_ray, tmp_path):
    from pathevo.runners.binary_digits import BinaryDigitsConfig, main

    def generations(backend: str) -> list[int]:
        cfg = BinaryDigitsConfig(
            seed=3, pairs=1, threshold=0.95, max_generations=40, evo=EvoConfig(population=8),
            run_dir=str(tmp_path / backend), progress=False, backend=backend,
        )  # fmt: skip
        summary = main(cfg)
        return [summary[f"{c}_generations"][0] for c in ("scratch", "finetune", "pathnet")]

    serial, on_ray = generations("serial"), generations("ray")
    assert max(serial) < 40, serial  # every condition learns its task serially ...
    assert max(on_ray) < 40, on_ray  # ... and on Ray, whose training comes back to the driver
