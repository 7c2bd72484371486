"""runners/atari_transfer.py with tiny budgets: four phases, the summary, figures, resume."""

import json
import math

import pytest
import torch

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.runners import atari_transfer as runner
from pathevo.runners.figures.tensorboard import scalar_tags
from pathevo.runners.plumbing import run_dir as rd

TINY = PathNetA3CConfig(layers=2, modules=4, active=2, units=16, episodes_per_evaluation=1)


def test_transfer_smoke_with_tiny_budgets(tmp_path):
    run = tmp_path / "run"
    cfg = runner.TransferConfig(
        env_a="MinAtar/Breakout-v1", env_b="MinAtar/SpaceInvaders-v1", workers=2, steps=600,
        a3c=A3CConfig(t_max=5, hidden=16), pathnet=TINY, run_dir=str(run), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    assert set(summary["conditions"]) == {"pathnet", "scratch", "finetune"}
    for condition in summary["conditions"].values():
        assert condition["curve"] and all(len(point) == 2 for point in condition["curve"])
        assert condition["steps_to_threshold"] is None or condition["steps_to_threshold"] > 0
        assert math.isfinite(condition["auc"])
    assert summary["speedup_vs_scratch"] > 0 and summary["speedup_vs_finetune"] > 0
    areas = {name: condition["auc"] for name, condition in summary["conditions"].items()}
    if areas["pathnet"] > 0 and areas["scratch"] > 0:  # MinAtar returns are never negative
        assert summary["area_ratio_vs_scratch"] == areas["pathnet"] / areas["scratch"]
    assert summary["worker_restarts"] == 0
    assert 0.0 <= summary["module_reuse"] <= 1.0
    assert json.loads((run / rd.SUMMARY).read_text())["conditions"].keys() == {
        "pathnet", "scratch", "finetune",
    }  # fmt: skip
    assert (run / "learning_curves.png").exists() and (run / "paths.png").exists()
    # One tag scheme: each phase's directory carries the same tags, so TensorBoard overlays them.
    tags = scalar_tags(run)
    assert set(tags) == {"", *runner.PHASES}
    for phase in runner.PHASES:
        assert {"charts/mean_return_20", "losses/policy_loss", "losses/value_loss"} <= tags[phase]
        assert {tag.split("/")[0] for tag in tags[phase]} <= {"charts", "losses", "evolution"}
    assert {"evolution/fitness_max", "evolution/fitness_mean"} <= tags["pathnet_b"]
    assert tags[""] == {f"summary/{name}_auc" for name in runner.CONDITIONS}
    state = torch.load(run / rd.CHECKPOINT, weights_only=False)
    assert set(state["logs"]) == set(runner.PHASES)
    # The fine-tuning control starts from A's network on A's best path.
    assert summary["conditions"]["finetune"]["best_path"] == summary["task_a"]["best_path"]
    assert runner.main(runner.TransferConfig(resume=str(run))) == summary


def test_transfer_with_an_moe_last_layer_freezes_a_gate(tmp_path):
    cfg = runner.TransferConfig(
        env_a="MinAtar/Breakout-v1", env_b="MinAtar/SpaceInvaders-v1", workers=2, steps=300,
        agent="pathnet-moe", a3c=A3CConfig(t_max=5, hidden=16, log_every=1), pathnet=TINY,
        run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    assert "moe_load_cv2" in summary["conditions"]["pathnet"]
    state = torch.load(tmp_path / "run" / rd.CHECKPOINT, weights_only=False)
    model, _, task = runner.setup_phase("pathnet_b", cfg, (6, 10, 10), (3, 4), state)
    moe = model.library.layers[-1]
    assert task == "B:MinAtar/SpaceInvaders-v1"
    assert moe.frozen_tasks == {"A:MinAtar/Breakout-v1"}
    assert moe.task_parameters("B:MinAtar/SpaceInvaders-v1")[0].requires_grad
    with pytest.raises(ValueError, match="path-evolving agent 'moe'"):
        runner.TransferConfig(agent="moe")


def test_setup_of_the_pathnet_phase_freezes_a_and_keeps_it_bitwise():
    cfg = runner.TransferConfig(workers=2, pathnet=TINY)
    torch.manual_seed(0)
    model_a, _, _ = runner.setup_phase("pathnet_a", cfg, (6, 10, 10), (3, 6), {})
    best_a = [0, 1, 2, 3]
    state = {"after_a": model_a.state_dict(), "best_a": best_a}
    model_b, population, task = runner.setup_phase("pathnet_b", cfg, (6, 10, 10), (3, 6), state)
    assert task == "B:MinAtar/SpaceInvaders-v1" and len(population) == 2
    first, second = model_b.library.layers
    assert first.frozen.tolist() == [True, True, False, False]
    assert second.frozen.tolist() == [False, False, True, True]
    assert torch.equal(first.weights[0], model_a.library.layers[0].weights[0])
    assert not torch.equal(first.weights[2], model_a.library.layers[0].weights[2])  # re-initialised
    finetune, population, _ = runner.setup_phase("finetune", cfg, (6, 10, 10), (3, 6), state)
    assert population.genomes.tolist() == [best_a, best_a]
    assert not finetune.library.layers[0].frozen.any()


def test_bad_settings_are_user_errors_that_write_nothing(tmp_path):
    with pytest.raises(ValueError, match="at least 2 workers"):
        runner.TransferConfig(workers=1)
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="differ"):
        runner.main(
            runner.TransferConfig(
                env_a="ALE/Pong-v5", env_b="MinAtar/Breakout-v1", run_dir=str(run)
            )
        )
    with pytest.raises(ValueError, match="unknown environment id"):
        runner.main(runner.TransferConfig(env_b="MinAtar/Pong-v1", run_dir=str(run)))
    assert not run.exists()
