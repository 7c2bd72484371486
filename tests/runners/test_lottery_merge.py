"""runners/lottery_merge.py, and the lottery summary's 95%-of-dense criterion (Vischer et al.)."""

import json
import sys

import pytest

from pathevo.runners import lottery, lottery_merge


def digits_run(path, seed: int, repeats: int, **overrides) -> lottery.LotteryConfig:
    cfg = lottery.LotteryConfig(env_id="digits/3v5", steps=60, rounds=1, seed=seed,
                                repeats=repeats, run_dir=str(path), progress=False,
                                **overrides)  # fmt: skip
    lottery.main(cfg)
    return cfg


def test_merged_runs_summarise_as_one_run_over_all_their_seeds(tmp_path):
    digits_run(tmp_path / "a", seed=0, repeats=1)
    digits_run(tmp_path / "b", seed=1, repeats=2)
    digits_run(tmp_path / "whole", seed=0, repeats=3)  # image tasks are deterministic per seed
    merged = lottery_merge.main(lottery_merge.LotteryMergeConfig(
        runs=(str(tmp_path / "a"), str(tmp_path / "b")), out=str(tmp_path / "m")))  # fmt: skip
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert merged["seeds"] == [0, 1, 2]
    for key in ("dense", "levels"):
        assert json.loads(json.dumps(merged[key])) == whole[key]
    for name in ("summary.json", "summary.md", "lottery.png", "early_stopping.png"):
        assert (tmp_path / "m" / name).stat().st_size > 0


def test_runs_with_other_settings_or_shared_seeds_are_refused_in_one_line(
    tmp_path, monkeypatch, capsys
):
    digits_run(tmp_path / "a", seed=0, repeats=1)
    digits_run(tmp_path / "b", seed=0, repeats=1)
    digits_run(tmp_path / "c", seed=1, repeats=1, prune_fraction=0.4)
    for runs, words in (("a b", "repeats seed"), ("a c", "prune_fraction"), ("a", "two or more"),
                        ("a nowhere", "no finished lottery run")):  # fmt: skip
        argv = ["lottery_merge", "--out", str(tmp_path / "m"), "--runs",
                *(str(tmp_path / name) for name in runs.split())]  # fmt: skip
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_:
            lottery_merge.run_cli(lottery_merge.main, lottery_merge.LotteryMergeConfig, "merge")
        error = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and "\n" not in error and words in error, (runs, error)
    assert not (tmp_path / "m").exists()


def test_retention_margin_is_paired_and_measured_above_the_floor():
    dense = [{"final_mean_return": r} for r in (-100.0, -200.0, -100.0)]
    runs = [{"final_mean_return": r} for r in (-110.0, -220.0, -150.0)]
    out = lottery.retention("ticket", runs, dense, floor=-500.0)
    # above -500: dense 400, 300, 400; runs 390, 280, 350; margins 390-380, 280-285, 350-380
    assert out["ticket_minus_95"] == pytest.approx((10 - 5 - 30) / 3)
    assert out["ticket_minus_95_ci95"] > 0
    assert out["ticket_of_dense"] == pytest.approx(1020 / 1100)


def test_holds_dense_finds_the_first_levels_below_95_percent():
    def level(sparsity, margin, half):
        return {"sparsity": sparsity, "ticket_minus_95": margin, "ticket_minus_95_ci95": half,
                "reinit_minus_95": 5.0, "reinit_minus_95_ci95": 1.0}  # fmt: skip

    levels = [level(0.5, 3.0, 4.0), level(0.75, -1.0, 4.0), level(0.9, 2.0, 1.0),
              level(0.95, -9.0, 4.0)]  # fmt: skip
    holds = lottery.holds_dense(("ticket", "reinit"), levels)
    assert holds["ticket"] == {"below_at": 0.75, "surely_below_at": 0.95, "held_to": 0.5}
    assert holds["reinit"] == {"below_at": None, "surely_below_at": None, "held_to": 0.95}
