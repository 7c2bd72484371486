"""The binary-digits runner with a static-hypernetwork last layer (``--library-kind hyper``)."""

from __future__ import annotations

import random

import torch

import pathevo.runners.binary_digits as runner
from pathevo.agents.hyper_agents import HyperConfig
from pathevo.modules.hyper_layer import HyperLinearLayer
from pathevo.runners.binary_digits import BinaryDigitsConfig, main
from pathevo.runners.plumbing.cli import parse_config
from tests.runners.test_binary_digits import tiny


def test_cli_selects_the_hyper_kind_and_its_settings() -> None:
    args = ["--library-kind", "hyper", "--hyper.z-dim", "8", "--hyper.in-tile", "5"]
    cfg = parse_config(BinaryDigitsConfig, "test", args)
    assert cfg.library_kind == "hyper" and cfg.hyper == HyperConfig(z_dim=8, in_tile=5)
    library = runner.fresh_library(cfg, 64, torch.device("cpu"))
    last = library.layers[-1]
    assert isinstance(last, HyperLinearLayer) and (last.z_dim, last.in_tile) == (8, 5)


def test_transfer_with_a_hyper_last_layer_runs_and_freezes_by_cached_weights(tmp_path) -> None:
    run = tmp_path / "run"
    cfg = tiny(run, pairs=1, library_kind="hyper", hyper=HyperConfig(z_dim=8), max_generations=6)
    summary = main(cfg)
    for key in ("scratch_generations", "finetune_generations", "pathnet_generations"):
        assert len(summary[key]) == 1 and 1 <= summary[key][0] <= 6
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    library = runner.fresh_library(cfg, 28 * 28, torch.device("cpu"))
    library.load_state_dict(state["library"])
    # Phase pathnet_b: A's best path frozen (its kernels cached), everything else re-initialised.
    ((task_a, task_b),) = summary["pairs"]
    result = {"task_a": task_a, "best_a": state["results"][0]["best_a"]}
    library, _ = runner.start_phase(
        cfg, "pathnet_b", runner.make_binary_task(task_b), library, result, torch.device("cpu"),
        random.Random(0),
    )  # fmt: skip
    hyper = library.layers[-1]
    frozen = hyper.frozen.nonzero().flatten().tolist()
    assert frozen and hyper.frozen_kernels[frozen].abs().sum() > 0
    assert torch.equal(hyper.kernels(frozen), hyper.frozen_kernels[frozen])
    path_a = runner.genome_to_path(result["best_a"], cfg.evo.layers, cfg.evo.active)
    x = torch.rand(4, 28 * 28)
    before = library(x, path_a).detach()
    head = torch.nn.Linear(cfg.hidden, 2)
    task = runner.make_binary_task(task_b, resolution=28)
    trainer = runner.PathTrainer(library, head, task, cfg.train, cfg.evo.layers, cfg.evo.active)
    w_in = hyper.generator.w_in.detach().clone()
    trainer([m % cfg.evo.modules for m in range(len(result["best_a"]))])  # B trains a path
    assert not torch.equal(hyper.generator.w_in, w_in)  # the shared generator learns for B
    assert torch.equal(library(x, path_a), before)  # while A's path stays bitwise


def test_processes_backend_trains_a_hyper_library_in_spawned_workers(tmp_path) -> None:
    cfg = tiny(
        tmp_path / "run", pairs=1, library_kind="hyper", max_generations=2, backend="processes",
        workers=2,
    )  # fmt: skip
    summary = main(cfg)
    assert len(summary["pathnet_generations"]) == 1
