"""Map backends: the same evaluation runs serially or in spawned processes on a shared library."""

import random

import pytest
import torch

from pathevo.agents.supervised import PathTrainer, SupervisedConfig
from pathevo.envs.digits import make_binary_task
from pathevo.evolution.backends import map_backend
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.toolbox import make_toolbox
from pathevo.evolution.tournament import SearchState, evolve
from pathevo.modules import linear_library


def square(value: int) -> int:
    return value * value


@pytest.mark.parametrize("kind", ["serial", "processes"])
def test_backends_map_in_order(kind):
    with map_backend(kind, workers=2) as map_fn:
        assert list(map_fn(square, range(5))) == [0, 1, 4, 9, 16]


def draw(_: int) -> float:
    return torch.rand(()).item()


def test_process_workers_draw_different_random_streams():
    with map_backend("processes", workers=2, seed=7) as map_fn:
        draws = list(map_fn(draw, range(8)))
    assert len(set(draws)) == 8


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="unknown map backend"), map_backend("cluster"):
        pass


def test_process_workers_train_the_shared_library_in_place():
    torch.manual_seed(0)
    library = linear_library(64, 8, num_layers=2, num_modules=4).share_memory()
    head = torch.nn.Linear(8, 2).share_memory()
    task = make_binary_task("digits/0v1")
    task.x.share_memory_(), task.y.share_memory_()
    trainer = PathTrainer(library, head, task, SupervisedConfig(minibatches=5), 2, 2)
    before = library.layers[0].stacked("weights")
    cfg = EvoConfig(layers=2, modules=4, active=2, population=4)
    with map_backend("processes", workers=2) as map_fn:
        toolbox = make_toolbox(cfg, map_fn, random.Random(0))
        toolbox.register("evaluate", trainer)
        state = evolve(SearchState(population=toolbox.population(n=4)), toolbox, 2, 2.0)
    assert state.generation == 2
    assert all(0.0 <= entry["winner"] <= 1.0 for entry in state.logbook)
    assert not torch.equal(before, library.layers[0].stacked("weights"))  # trained by workers
