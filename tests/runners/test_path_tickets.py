"""runners/path_tickets.py: IMP on A's evolved path, its levels, the pruned frozen path B starts
from, files, resume, bad input."""

import json
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pathevo.agents.supervised import SupervisedConfig, train_path
from pathevo.envs.digits import make_binary_task
from pathevo.evolution.config import EvoConfig
from pathevo.modules import pruning
from pathevo.runners import path_tickets as runner
from pathevo.runners.binary_digits import BinaryDigitsConfig, fresh_library

SMALL = {"pairs": 1, "repeats": 2, "rounds": 2, "max_generations": 4, "resolution": None,
         "tasks": ("digits/3v5:digits/1v7",), "evo": EvoConfig(population=8),
         "train": SupervisedConfig(minibatches=5)}  # fmt: skip


def small(tmp_path, **overrides) -> runner.PathTicketsConfig:
    return runner.PathTicketsConfig(**{**SMALL, "run_dir": str(tmp_path / "run"), **overrides})


def test_run_levels_sparsities_conditions_files_and_resume(tmp_path, capsys):
    summary = runner.main(small(tmp_path))
    conditions = summary["conditions"]
    assert list(conditions) == ["scratch", "evolved", "r0", "r1", "r2"]
    for name, pruned in (("evolved", 0.0), ("r0", 0.0), ("r1", 0.5), ("r2", 0.75)):
        assert conditions[name]["sparsity"]["mean"] == pytest.approx(pruned, abs=1e-3), name
    assert summary["units"] == 2 and len(summary["results"]) == 2
    assert {r["seed"] for r in summary["results"]} == {0, 1}
    for row in conditions.values():
        assert len(row["b_generations"]["runs"]) == 2 and row["b_generations"]["ci95"] is not None
        assert 0.0 <= row["b_accuracy"]["mean"] <= 1.0
    assert conditions["r0"]["a_accuracy_minus_r0"]["mean"] == 0.0
    assert "b_generations_minus_evolved" in conditions["r2"]
    run = tmp_path / "run"
    assert json.loads((run / "summary.json").read_text())["units"] == 2
    assert (run / "levels.png").stat().st_size > 0
    for events in (run, run / "digits_3v5-digits_1v7" / "s1"):  # the means and each unit's
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        steps = [e.step for e in accumulator.Scalars("summary/a_accuracy")]
        assert steps == [0, 1, 2] and accumulator.Scalars("summary/scratch_b_generations")
    capsys.readouterr()
    again = runner.main(runner.PathTicketsConfig(resume=str(run)))  # its own settings back
    assert "unit 1/2" not in capsys.readouterr().out  # finished units are not run again
    assert again["results"] == json.loads(json.dumps(summary["results"]))


def test_fixed_generations_train_every_phase_exactly_that_long(tmp_path, monkeypatch):
    lengths = []
    real = runner.evolve

    def counting(search, *args, **kwargs):
        out = real(search, *args, **kwargs)
        lengths.append(out.generation)
        return out

    monkeypatch.setattr(runner, "evolve", counting)
    summary = runner.main(small(tmp_path, repeats=1, rounds=1, max_generations=3,
                                fixed_generations=3, threshold=0.5))  # fmt: skip
    assert lengths == [3] * 5  # A, then B from scratch, evolved, r0 and r1
    levels = summary["results"][0]["levels"]
    assert all(levels[f"r{r}"]["a_solved"] for r in (0, 1))  # past the easy threshold, still 3


def test_resume_runs_only_the_units_a_killed_run_did_not_finish(tmp_path, monkeypatch):
    real, calls = runner.run_unit, []

    def dies_on_second(unit, say):
        calls.append(unit.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(unit, say)

    monkeypatch.setattr(runner, "run_unit", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        runner.main(small(tmp_path))
    partial = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert partial["units"] == 1 and partial["partial"] == 2  # what the first unit showed
    monkeypatch.setattr(runner, "run_unit",
                        lambda unit, say: calls.append(unit.seed) or real(unit, say))  # fmt: skip
    summary = runner.main(runner.PathTicketsConfig(resume=str(tmp_path / "run")))
    assert calls == [0, 1, 1] and [r["seed"] for r in summary["results"]] == [0, 1]


def test_the_frozen_path_b_starts_from_holds_the_level_and_stays_put():
    """B's library holds the level's whole path (pruned weights 0, its biases), frozen, and its
    other modules re-initialised; training B changes nothing of it."""
    torch.manual_seed(0)
    cfg = BinaryDigitsConfig(resolution=None, progress=False)
    library = fresh_library(cfg, 64, torch.device("cpu"))
    after_a = {k: v.clone() for k, v in library.state_dict().items()}
    path = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])[: library.num_layers]  # [L, N]
    targets = pruning.library_targets(library, path)
    pruning.attach_masks(targets)
    pruning.magnitude_prune(targets, 0.75, "layer")
    with torch.no_grad():
        for parameter in runner.path_parameters(library, path):
            if parameter.dim() == 1:  # a bias: trained away from A's final value
                parameter.add_(1.0)
    level = runner.path_snapshot(library, path)
    assert any(value.dim() == 1 for value in level) and any(value.dim() == 2 for value in level)
    b_library = fresh_library(cfg, 64, torch.device("cpu"))
    runner.transferred(b_library, after_a, path, level, "digits/3v5")
    held = runner.path_snapshot(b_library, path)
    assert all(torch.equal(h, v) for h, v in zip(held, level, strict=True))
    pruned = [h for h in held if h.dim() == 2]
    assert all((h == 0).float().mean() == pytest.approx(0.75, abs=0.01) for h in pruned)
    for ids, mask in zip(path.tolist(), b_library.frozen_mask(), strict=True):
        assert mask[ids].all() and not mask[[m for m in range(len(mask)) if m not in ids]].any()
    off_path = b_library.layers[0].weights[9].detach()
    assert not torch.equal(off_path, after_a["layers.0.weights.9"])  # re-initialised
    task = make_binary_task("digits/1v7")
    head = torch.nn.Linear(cfg.hidden, 2)
    train_path(b_library, head, path, task, SupervisedConfig(minibatches=3, noise=0.0))
    after = runner.path_snapshot(b_library, path)  # B trains nothing of the frozen path
    assert all(torch.equal(a, v) for a, v in zip(after, level, strict=True))


def test_a_level_keeps_accuracy_up_to_the_first_level_more_than_a_point_below_r0():
    def row(sparsity, difference, half):
        return {"sparsity": {"mean": sparsity}, "a_accuracy_minus_r0": {"mean": difference,
                                                                        "ci95": half}}  # fmt: skip

    conditions = {"r1": row(0.5, 0.0, 0.01), "r2": row(0.75, -0.02, 0.03),
                  "r3": row(0.875, 0.0, 0.01), "r4": row(0.94, -0.05, 0.02)}  # fmt: skip
    kept = runner.keeps_accuracy(conditions, ["r1", "r2", "r3", "r4"])
    assert kept == {"held_to": 0.5, "below_at": 0.75, "surely_below_at": 0.94}


def test_train_path_keeps_pruned_library_weights_at_zero():
    torch.manual_seed(0)
    library = fresh_library(BinaryDigitsConfig(resolution=None, progress=False), 64,
                            torch.device("cpu"))  # fmt: skip
    path = torch.zeros(library.num_layers, 1, dtype=torch.long)  # module 0 of every layer
    targets = pruning.library_targets(library, path)
    pruning.attach_masks(targets)
    pruning.magnitude_prune(targets, 0.5, "layer")
    masks = pruning.masks(targets)
    head = torch.nn.Linear(20, 2)
    task = make_binary_task("digits/3v5")
    cfg = SupervisedConfig(minibatches=20, noise=0.0)
    train_path(library, head, path, task, cfg, targets)
    for (module, name), mask in zip(targets, masks, strict=True):
        weight = module._parameters[name].detach()
        assert (weight[mask == 0] == 0).all() and (weight[mask == 1] != 0).any()
    train_path(library, head, path, task, cfg)  # without the targets the pruned entries move
    assert any((module._parameters[name].detach()[mask == 0] != 0).any()
               for (module, name), mask in zip(targets, masks, strict=True))  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["--prune-fraction", "1.5"],
        ["--rounds", "0"],
        ["--tasks", "digits/3v5"],
        ["--resume", "/nonexistent/run"],
    ],  # fmt: skip
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, args):
    monkeypatch.setattr(sys, "argv", ["path_tickets", "--run-dir", str(tmp_path / "r"), *args])
    with pytest.raises(SystemExit) as exit_:
        runner.run_cli(runner.main, runner.PathTicketsConfig, "path tickets")
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error, args
    assert not (tmp_path / "r").exists()
