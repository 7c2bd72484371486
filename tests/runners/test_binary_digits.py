"""The binary-digits runner: smoke run, outputs, resume, user errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pathevo.runners.binary_digits as runner
from pathevo.evolution.config import EvoConfig
from pathevo.runners.binary_digits import BinaryDigitsConfig, main
from pathevo.runners.plumbing.cli import parse_config

ROOT = Path(__file__).resolve().parents[2]


def tiny(run_dir: Path, **overrides) -> BinaryDigitsConfig:
    settings = dict(
        seed=3,
        pairs=2,
        threshold=0.9,
        max_generations=4,
        evo=EvoConfig(population=6),
        run_dir=str(run_dir),
        progress=False,
        checkpoint_every=1,
        image_every=2,
    )
    settings.update(overrides)
    return BinaryDigitsConfig(**settings)


def test_smoke_run_writes_summary_config_events_and_figure(tmp_path):
    summary = main(tiny(tmp_path / "run"))
    run = tmp_path / "run"
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for key in ("scratch_generations", "finetune_generations", "pathnet_generations"):
        assert len(summary[key]) == 2
        assert all(1 <= g <= 4 for g in summary[key])
    assert summary["speedup_vs_scratch"] > 0 and summary["speedup_vs_finetune"] > 0
    assert all(0.0 <= r <= 1.0 for r in summary["module_reuse"])
    assert json.loads((run / "config.json").read_text())["evo"]["population"] == 6
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "paths.png").stat().st_size > 1000
    assert not list(run.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize(
    ("at_once", "cut"), [(0, 11), (2, 11)], ids=["serial", "two-tournaments-at-once"]
)
def test_resume_after_interruption_reproduces_the_uninterrupted_run(
    tmp_path, monkeypatch, at_once, cut
):
    def config(run: str) -> BinaryDigitsConfig:  # curves measured every generation
        evo = EvoConfig(population=6, tournaments_at_once=at_once)
        return tiny(tmp_path / run, test_every=1, fixed_generations=3, evo=evo)

    expected = main(config("full"))
    assert all(len(expected["curves"][c]["generation"]) >= 3 for c in runner.CONDITIONS)

    original = runner.GenerationLogger.__call__
    calls = {"n": 0}

    def interrupting(self, *, state, outcome):
        original(self, state=state, outcome=outcome)
        calls["n"] += 1
        if calls["n"] == cut:  # in the middle of the first pair's phases (and of a round)
            raise KeyboardInterrupt

    monkeypatch.setattr(runner.GenerationLogger, "__call__", interrupting)
    with pytest.raises(KeyboardInterrupt):
        main(config("cut"))
    assert not (tmp_path / "cut" / "summary.json").exists()
    monkeypatch.setattr(runner.GenerationLogger, "__call__", original)
    resumed = main(BinaryDigitsConfig(resume=str(tmp_path / "cut"), progress=False))
    assert resumed == expected
    # Resuming a finished run returns its summary without recomputing.
    assert main(BinaryDigitsConfig(resume=str(tmp_path / "cut"), progress=False)) == expected


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "runners" / "binary_digits.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "digits/3v3:digits/1v7"], "unknown task 'digits/3v3'"),
        (["--tasks", "digits/3v5:digits/1v12"], "unknown task 'digits/1v12'"),
        (["--tasks", "3v5"], "should read 'A:B'"),
        (["--evo.active", "11"], "active N=11 > modules M=10"),
        (["--pairs", "0"], "must be positive"),
        (["--pairs", "many"], "--pairs"),
        (["--train.noise", "1.5"], "noise must lie in [0, 1]"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_flags_become_one_line_value_errors(args, message):
    with pytest.raises(ValueError) as error:
        parse_config(BinaryDigitsConfig, "test", args)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_cuda_and_bad_resume_dir_are_user_errors(tmp_path):
    with pytest.raises(ValueError, match="CUDA is not available"):
        main(tiny(tmp_path / "run", device="cuda:7"))
    assert not (tmp_path / "run").exists()  # nothing written for a run that cannot start
    with pytest.raises(ValueError, match="cannot resume"):
        main(BinaryDigitsConfig(resume=str(tmp_path / "nothing-here")))


def test_cli_prints_one_line_and_exits_2_without_traceback(tmp_path):
    result = run_cli("--evo.active", "11", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: a path cannot use more modules per layer than exist: active N=11 > modules M=10"
    ]


def test_unreadable_checkpoint_is_a_one_line_error_and_is_left_untouched(tmp_path):
    run = tmp_path / "run"
    main(tiny(run, pairs=1, max_generations=1))
    (run / "summary.json").unlink()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = run_cli("--resume", str(run))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unreadable checkpoint")
    assert (run / "checkpoint.pt").read_bytes() == b"not a checkpoint"


def test_existing_run_dir_is_not_overwritten(tmp_path):
    run = tmp_path / "run"
    main(tiny(run, pairs=1, max_generations=1))
    before = (run / "summary.json").read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        main(tiny(run, pairs=1, max_generations=1))
    assert (run / "summary.json").read_bytes() == before


def test_help_lists_documented_flags():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ("--seed", "--run-dir", "--device", "--pairs", "--resume", "--evo.active"):
        assert flag in result.stdout
    assert "K: number of random (A, B) task pairs" in result.stdout


def test_transfer_with_an_moe_last_layer_learns_and_keeps_each_tasks_gate(tmp_path):
    import torch

    run = tmp_path / "run"
    cfg = tiny(run, pairs=1, library_kind="moe", max_generations=40)
    summary = main(cfg)
    assert all(summary["pathnet_solved"]) and all(summary["scratch_solved"]), summary
    ((name, cv2),) = summary["moe_load_cv2"][0].items()  # B's routing, its last generation
    assert name.startswith("layers.2/") and 0.0 <= cv2 < 3.0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    ((task_a, task_b),) = summary["pairs"]
    library = runner.fresh_library(cfg, 28 * 28, torch.device("cpu"))
    library.load_state_dict(state["library"])  # what --resume does: the gates come with it
    assert task_b in library.layers[-1].gates
    # Phase pathnet_b freezes A's path and A's gate, and gives B a gate of its own.
    library.add_task(task_a)
    result = {"task_a": task_a, "best_a": state["results"][0]["best_a"]}
    task = runner.make_binary_task(task_b)
    library, _ = runner.start_phase(
        cfg, "pathnet_b", task, library, result, torch.device("cpu"), runner.random.Random(0)
    )
    moe = library.layers[-1]
    assert moe.frozen_tasks == {task_a}
    assert moe.task_parameters(task_b)[0].requires_grad
    assert not moe.task_parameters(task_a)[0].requires_grad


def test_presets_default_to_the_paper_and_fast_keeps_explicit_flags():
    paper = BinaryDigitsConfig()
    assert (paper.threshold, paper.finetune, paper.evo.population) == (0.998, "evolve", 64)
    fast = parse_config(BinaryDigitsConfig, "test", ["--preset", "fast"])
    assert (fast.threshold, fast.max_generations) == (0.99, 300)
    explicit = parse_config(BinaryDigitsConfig, "test", ["--preset", "fast", "--threshold", "0.95"])
    assert explicit.threshold == 0.95


def after_task_a(cfg: BinaryDigitsConfig):
    """A library, head and population as pathnet_a leaves them (trained a little on digits/3v5)."""
    import random

    import torch

    from pathevo.agents.supervised import SupervisedConfig, train_path
    from pathevo.evolution.toolbox import make_toolbox

    task = runner.make_binary_task("digits/3v5", resolution=8)
    library = runner.fresh_library(cfg, task.input_size, torch.device("cpu"))
    library.add_task("digits/3v5")
    head = torch.nn.Linear(cfg.hidden, 2)
    population = make_toolbox(cfg.evo, rng=random.Random(0)).population(n=cfg.evo.population)
    for genome in population:
        genome.fitness.values = (0.5,)
    short = SupervisedConfig(minibatches=5)
    train_path(library, head, torch.tensor([population[0]]).view(3, 3), task, short)
    after_a = {"library": library.state_dict(), "head": head.state_dict(), "population": population}
    result = {"task_a": "digits/3v5", "best_a": list(population[0])}
    return after_a, result, runner.make_binary_task("digits/1v7", resolution=8)


def test_evolving_finetune_continues_from_a_with_nothing_frozen_or_reinitialised(tmp_path):
    import random

    import torch

    cfg = tiny(tmp_path / "run", resolution=8, evo=EvoConfig(population=5))
    after_a, result, task_b = after_task_a(cfg)
    library, search = runner.start_phase(
        cfg, "finetune_b", task_b, None, result, torch.device("cpu"), random.Random(1), after_a
    )
    for name, value in after_a["library"].items():
        assert torch.equal(library.state_dict()[name], value), name
    assert not any(mask.any() for mask in library.frozen_mask())
    assert [list(g) for g in search.population] == [list(g) for g in after_a["population"]]
    assert not any(g.fitness.valid for g in search.population)  # A's fitness is not B's
    assert all(g.fitness.valid for g in after_a["population"])  # the snapshot is untouched


@pytest.mark.parametrize(("reinit", "reset"), [(True, True), (False, False)])
def test_pathnet_transfer_reinitialisation_and_population_are_options(tmp_path, reinit, reset):
    import random

    import torch

    cfg = tiny(tmp_path / "run", resolution=8, evo=EvoConfig(population=5))
    cfg.reinit_unfrozen, cfg.reset_population = reinit, reset
    after_a, result, task_b = after_task_a(cfg)
    library, search = runner.start_phase(
        cfg, "pathnet_b", task_b, None, result, torch.device("cpu"), random.Random(1), after_a
    )
    frozen = library.frozen_mask()
    first = library.layers[0].stacked("weights")
    before = after_a["library"]
    weights_a = torch.stack([before[f"layers.0.weights.{m}"] for m in range(10)])
    assert torch.equal(first[frozen[0]], weights_a[frozen[0]])  # A's path: kept exactly
    assert torch.equal(first[~frozen[0]], weights_a[~frozen[0]]) is not reinit
    carried = [list(g) for g in search.population] == [list(g) for g in after_a["population"]]
    assert carried is not reset


def test_frozen_always_active_runs_a_path_on_b_without_moving_it(tmp_path):
    import torch

    cfg = tiny(
        tmp_path / "run", pairs=1, resolution=8, max_generations=2, evo=EvoConfig(population=4)
    )
    cfg.frozen_always_active = cfg.copy_head = True
    summary = main(cfg)
    assert len(summary["pathnet_generations"]) == 1
    trainer = runner.PathTrainer(None, None, None, None, 3, 3, [[0, 1, 2]] * 3)  # type: ignore[arg-type]
    assert trainer.beside == [[0, 1, 2]] * 3
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["after_a"]["population"]  # the snapshot the B phases start from


def test_paired_statistics_report_intervals_medians_censoring_and_log_ratios():
    import math

    generations = {"scratch": [10, 40, 300], "finetune": [20, 20, 20], "pathnet": [5, 40, 150]}
    solved = {"scratch": [True, True, False], "finetune": [True] * 3, "pathnet": [True] * 3}
    stats = runner.paired_statistics(generations, solved)
    assert stats["scratch"]["median"] == 40 and stats["scratch"]["censored"] == 1
    paired = stats["pathnet_vs_scratch"]
    assert paired["mean_log_ratio"] == pytest.approx((math.log(2) + 0 + math.log(2)) / 3)
    assert paired["mean_difference"] == pytest.approx((5 + 0 + 150) / 3)
    assert (paired["pathnet_faster"], paired["pathnet_slower"]) == (2, 0)
    assert paired["both_solved"] == 2  # the censored pair is left out
    assert paired["both_solved_geometric_speedup"] == pytest.approx(math.sqrt(2))
    assert runner.related("digits/1v3", "digits/1v2")
    assert not runner.related("digits/4v5", "digits/6v7")


def write_image_set(folder: Path, per_class: int = 24, test_per_class: int = 8) -> None:
    """Small MNIST-format IDX files: class c is a bright 6×6 block at its own place, noisy."""
    import numpy as np

    from pathevo.envs.mnist_idx import write_idx

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for prefix, count in (("train", per_class), ("t10k", test_per_class)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), count)
        images = rng.integers(0, 60, size=(len(labels), 28, 28), dtype=np.uint8)
        for index, label in enumerate(labels):
            row, col = divmod(int(label), 5)
            images[index, 4 + 10 * row : 10 + 10 * row, 1 + 5 * col : 7 + 5 * col] = 255
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def test_real_image_pairs_are_named_by_data_set_and_scored_on_held_out_images(tmp_path):
    write_image_set(tmp_path / "data" / "fashion-mnist")
    cfg = tiny(
        tmp_path / "run", dataset="fashion", data_dir=str(tmp_path / "data"), threshold=0.999,
        max_generations=6, fixed_generations=4, test_every=2,
    )  # fmt: skip
    summary = main(cfg)
    assert all(
        name.startswith("fashion/") and "-v-" in name for p in summary["pairs"] for name in p
    )
    for condition in runner.CONDITIONS:
        assert all(0.0 <= a <= 1.0 for a in summary[f"{condition}_fixed_accuracy"])
        assert len(summary[f"{condition}_test_accuracy"]) == 2
        curve = summary["curves"][condition]
        assert curve["generation"][:2] == [2, 4]  # 6: unless a pair stopped at 4 (solved)
    stats = summary["accuracy_statistics"]["all"]
    assert set(stats) == {"test_accuracy", "fixed_accuracy", "curve_mean_accuracy"}
    difference = stats["fixed_accuracy"]["pathnet_minus_scratch"]
    pathnet, scratch = summary["pathnet_fixed_accuracy"], summary["scratch_fixed_accuracy"]
    assert difference["mean"] == pytest.approx(
        sum(p - s for p, s in zip(pathnet, scratch, strict=True)) / 2
    )
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000


def test_fixed_generations_keep_b_phases_going_past_the_threshold(tmp_path):
    write_image_set(tmp_path / "data")
    cfg = tiny(
        tmp_path / "run", pairs=1, tasks=("fashion/0v1:fashion/2v3",), threshold=0.5,
        data_dir=str(tmp_path / "data"), max_generations=8, fixed_generations=5, test_every=1,
    )  # fmt: skip
    summary = main(cfg)
    assert summary["pairs"] == [["fashion/tshirt-v-trouser", "fashion/pullover-v-dress"]]
    state = runner.load_state(tmp_path / "run")
    result = state["results"][0]
    for phase in ("scratch", "pathnet_b", "finetune_b"):
        assert result[f"{phase}_generations"] < 5  # the threshold's generation is kept
        assert [row[0] for row in result[f"{phase}_curve"]] == [1, 2, 3, 4, 5]
        assert result[f"{phase}_fixed_accuracy"] == result[f"{phase}_curve"][4][2]
    assert result["pathnet_a_curve"][-1][0] == result["pathnet_a_generations"]  # stops there


def test_missing_image_files_are_one_line_and_nothing_is_written(tmp_path, monkeypatch):
    import pathevo.envs.image_data as image_data

    monkeypatch.setattr(image_data, "DEBIAN_DATASETS", tmp_path / "debian")
    monkeypatch.delenv(image_data.DATA_ENV, raising=False)
    with pytest.raises(ValueError, match="no Fashion-MNIST IDX files") as error:
        main(tiny(tmp_path / "run", dataset="fashion"))
    assert "apt-get install dataset-fashion-mnist" in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_tournaments_at_once_train_a_round_together_with_a_frozen_path_beside(tmp_path):
    cfg = tiny(
        tmp_path / "run", pairs=1, resolution=8, max_generations=6, fixed_generations=6,
        evo=EvoConfig(population=8, tournaments_at_once=2), frozen_always_active=True,
    )  # fmt: skip
    summary = main(cfg)
    state = runner.load_state(tmp_path / "run")
    result = state["results"][0]
    for phase in ("scratch", "pathnet_b", "finetune_b"):
        assert result[f"{phase}_curve"][-1][0] == 6  # rounds of two, never past the budget
    assert 0.0 <= summary["pathnet_fixed_accuracy"][0] <= 1.0
    trainer = runner.PathTrainer(None, None, None, None, 3, 3, [[0, 1, 2]] * 3)  # type: ignore[arg-type]
    paths = trainer.path([3, 4, 5] * 3)
    assert paths.tolist() == [[3, 4, 5, 0, 1, 2]] * 3  # B's genome beside A's frozen path


def test_checkpoints_fall_between_rounds_of_tournaments():
    serial = runner.GenerationLogger.checkpoint_due
    logger = type("L", (), {"cfg": tiny(Path("unused"), checkpoint_every=25)})()
    assert [g for g in range(1, 101) if serial(logger, g)] == [25, 50, 75, 100]
    logger.cfg.evo = EvoConfig(tournaments_at_once=8)
    assert [g for g in range(1, 101) if serial(logger, g)] == [32, 56, 80, 104][:3]


def test_data_dir_without_an_idx_data_set_is_refused():
    with pytest.raises(ValueError, match="--data-dir is for the IDX data sets"):
        parse_config(BinaryDigitsConfig, "test", ["--data-dir", "/tmp"])
    cfg = parse_config(BinaryDigitsConfig, "test", ["--data-dir", "/tmp", "--dataset", "mnist"])
    assert cfg.data_dir == "/tmp"


def test_mean_curves_hold_a_curve_between_measurements_and_pair_the_differences():
    from pathevo.runners.plumbing.paired import mean_curves

    curves = {
        "scratch": [[[10, 0, 0.5], [20, 0, 0.7]], [[10, 0, 0.6], [15, 0, 0.8], [20, 0, 0.9]]],
        "pathnet": [[[10, 0, 0.6], [20, 0, 0.9]], [[10, 0, 0.6], [20, 0, 0.8]]],
    }
    out = mean_curves(curves)
    assert out["scratch"]["generation"] == [10, 15, 20]
    assert out["scratch"]["mean"] == pytest.approx([0.55, 0.65, 0.8])  # 15: the first holds 0.5
    difference = out["pathnet_minus_scratch"]
    assert difference["generation"] == [10, 15, 20]
    assert difference["mean"] == pytest.approx([0.05, -0.05, 0.05])
    assert "pathnet_minus_finetune" not in out


def test_a_finished_run_grows_by_more_random_pairs_as_if_run_with_them(tmp_path):
    whole = main(tiny(tmp_path / "whole", pairs=3))
    main(tiny(tmp_path / "grown", pairs=2))
    grown = main(BinaryDigitsConfig(resume=str(tmp_path / "grown"), extend_pairs=3, progress=False))
    assert grown == whole
    assert json.loads((tmp_path / "grown" / "config.json").read_text())["pairs"] == 3
    with pytest.raises(ValueError, match="--extend-pairs grows a run of random pairs"):
        main(BinaryDigitsConfig(resume=str(tmp_path / "grown"), extend_pairs=2, progress=False))
