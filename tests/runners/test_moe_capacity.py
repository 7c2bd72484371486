"""The MoE capacity runner: smoke run, outputs, resume, config errors, capacity helps."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pathevo.runners.moe_capacity as runner
from pathevo.runners.figures.tensorboard import scalar_tags
from pathevo.runners.moe_capacity import MoECapacityConfig, MoERegressor, RegionTeacherTask, main
from pathevo.runners.plumbing.cli import parse_config

ROOT = Path(__file__).resolve().parents[2]

ROW_KEYS = {
    "experts",
    "k",
    "expert_hidden",
    "params",
    "active_params",
    "active_expert_params",
    "heldout_loss",
    "heldout_r2",
    "load_cv2",
    "dropped",
    "train_seconds_per_step",
    "seconds",
    "curve",
}
TIMING = ("train_seconds_per_step", "seconds")


def tiny(run_dir: Path | None, **overrides) -> MoECapacityConfig:
    settings = dict(
        seed=1,
        experts=(1, 2, 4),
        steps=12,
        batch_size=16,
        input_dim=4,
        regions=3,
        teacher_hidden=3,
        outputs=2,
        model_dim=8,
        expert_hidden=4,
        heldout=64,
        eval_every=6,
        log_every=4,
        run_dir=None if run_dir is None else str(run_dir),
        progress=False,
    )
    settings.update(overrides)
    return MoECapacityConfig(**settings)


def without_timing(summary: dict) -> dict:
    rows = [{k: v for k, v in row.items() if k not in TIMING} for row in summary["results"]]
    return {**summary, "results": rows}


def test_smoke_run_writes_summary_config_events_checkpoint_and_figure(tmp_path):
    run = tmp_path / "run"
    summary = main(tiny(run))
    assert json.loads((run / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["experts"] == [1, 2, 4]
    assert len(summary["heldout_r2"]) == len(summary["heldout_loss"]) == 3
    for row, experts in zip(summary["results"], (1, 2, 4), strict=True):
        assert set(row) == ROW_KEYS
        assert row["experts"] == experts
        assert row["k"] == (1 if experts == 1 else 2)
        assert row["heldout_loss"] > 0 and row["heldout_r2"] <= 1
        assert row["load_cv2"] >= 0 and 0 <= row["dropped"] <= 1
        assert row["train_seconds_per_step"] > 0
        assert [step for step, _ in row["curve"]] == [6, 12]
    assert summary["results"][0]["load_cv2"] == 0  # one expert is always balanced
    params = [row["params"] for row in summary["results"]]
    assert params == sorted(params) and params[0] < params[-1]
    assert json.loads((run / "config.json").read_text())["experts"] == [1, 2, 4]
    assert list(run.glob("events.out.tfevents.*"))
    per_size = {"losses/train_loss", "losses/aux_loss", "charts/heldout_loss",
                "charts/heldout_r2", "moe/load_cv2"}  # fmt: skip
    assert scalar_tags(run) == {"": {"summary/heldout_r2", "summary/heldout_loss"},
                                "E1": per_size, "E2": per_size, "E4": per_size}  # fmt: skip
    assert (run / "checkpoint.pt").exists()
    assert (run / "moe_capacity.png").stat().st_size > 1000
    assert not list(run.glob(".*"))  # no temporary files left behind


def test_active_parameters_are_flat_across_experts():
    cfg = tiny(None, experts=(1, 2, 8), model_dim=16, expert_hidden=6)
    counts = {e: MoERegressor(cfg, e).parameter_counts() for e in cfg.experts}
    dense, sparse = counts[1]["active_expert_params"], counts[8]["active_expert_params"]
    # k experts of h units vs one of k·h: the same weights, the output bias counted k times.
    assert sparse - dense == (cfg.k - 1) * cfg.model_dim
    assert counts[2]["active_expert_params"] == sparse
    assert counts[8]["active_params"] - counts[2]["active_params"] == 6 * cfg.model_dim  # gate
    assert counts[8]["params"] > 3 * counts[2]["params"]
    model = MoERegressor(cfg, 8)
    assert counts[8]["params"] == sum(p.numel() for p in model.parameters())


def test_task_is_fixed_by_the_seed_and_normalised():
    cfg = tiny(None, regions=5, outputs=3)
    a, b = RegionTeacherTask(cfg), RegionTeacherTask(cfg)
    x, y = a.sample(4096, torch.Generator().manual_seed(0))  # x: [N, d], y: [N, o]
    torch.testing.assert_close(b.target(x), y)
    assert y.shape == (4096, 3)
    torch.testing.assert_close(y.mean(0), torch.zeros(3), atol=0.1, rtol=0)
    torch.testing.assert_close(y.std(0), torch.ones(3), atol=0.1, rtol=0)
    assert set(a.region(x).tolist()) == set(range(5))


def test_resume_skips_finished_experts_and_reproduces_the_run(tmp_path, monkeypatch):
    expected = main(tiny(tmp_path / "full"))

    original = runner.train_one
    trained: list[int] = []

    def interrupting(cfg, experts, *args):
        if experts == 2:
            raise KeyboardInterrupt
        trained.append(experts)
        return original(cfg, experts, *args)

    monkeypatch.setattr(runner, "train_one", interrupting)
    with pytest.raises(KeyboardInterrupt):
        main(tiny(tmp_path / "cut"))
    assert trained == [1]
    assert not (tmp_path / "cut" / "summary.json").exists()
    first = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["results"]["1"]

    def counting(cfg, experts, *args):
        trained.append(experts)
        return original(cfg, experts, *args)

    monkeypatch.setattr(runner, "train_one", counting)
    resumed = main(MoECapacityConfig(resume=str(tmp_path / "cut"), progress=False))
    assert trained == [1, 2, 4]  # E=1 was not trained again
    assert without_timing(resumed) == without_timing(expected)
    assert resumed["results"][0] == first  # kept as measured, timing included

    def failing(*args):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(runner, "train_one", failing)
    assert main(MoECapacityConfig(resume=str(tmp_path / "cut"), progress=False)) == resumed


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(experts=(0, 4)), "every E must be >= 1"),
        (dict(experts=()), "at least one E"),
        (dict(experts=(4, 4)), "must be distinct"),
        (dict(experts=(1, 2), k=3), "k=3 > E=2"),
        (dict(k=0), "k must be >= 1"),
        (dict(steps=0), "steps=0"),
        (dict(model_dim=-1, heldout=0), "model_dim=-1, heldout=0"),
        (dict(lr=0.0), "lr must be positive"),
        (dict(capacity_factor=0.0), "capacity_factor must be positive"),
        (dict(w_load=-0.1), "non-negative"),
    ],
)
def test_bad_configs_raise_one_line_value_errors(overrides, message):
    with pytest.raises(ValueError) as error:
        tiny(None, **overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_dense_baseline_may_have_fewer_experts_than_k():
    assert tiny(None, experts=(1, 4), k=4).k == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experts", "1", "0"], "every E must be >= 1"),
        (["--k", "8", "--experts", "1", "4"], "k=8 > E=4"),
        (["--batch-size", "0"], "batch_size=0"),
        (["--steps", "many"], "--steps"),
    ],
)
def test_bad_flags_become_one_line_value_errors(args, message):
    with pytest.raises(ValueError) as error:
        parse_config(MoECapacityConfig, "test", args)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_prints_one_line_and_exits_2_before_writing(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "moe_capacity.py"), "--experts", "1", "0"]
        + ["--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: every E must be >= 1, got experts=[1, 0]"]
    assert not (tmp_path / "run").exists()


def capacity_task(run_dir: Path, **overrides) -> MoECapacityConfig:
    settings = dict(
        seed=0,
        experts=(1, 8),
        steps=300,
        batch_size=64,
        input_dim=16,
        regions=8,
        teacher_hidden=8,
        outputs=8,
        model_dim=16,
        expert_hidden=8,
        heldout=1024,
        lr=1e-2,
        eval_every=300,
        log_every=50,
        run_dir=str(run_dir),
        progress=False,
    )
    settings.update(overrides)
    return MoECapacityConfig(**settings)


def test_eight_experts_beat_the_dense_baseline_at_the_same_active_size(tmp_path):
    dense, sparse = main(capacity_task(tmp_path / "run"))["heldout_loss"]
    assert sparse < dense


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_capacity_helps_by_a_clear_margin(tmp_path, seed):
    cfg = capacity_task(
        tmp_path / "run", seed=seed, steps=800, batch_size=128, regions=16, model_dim=32,
        heldout=2048, lr=3e-3, eval_every=800,
    )  # fmt: skip
    dense, sparse = main(cfg)["heldout_loss"]
    assert sparse < 0.92 * dense
