"""runners/lottery_merge.py: seeds run apart summarised as one run; refusals."""

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
        runs=(str(tmp_path / "a"), str(tmp_path / "b")), out=str(tmp_path / "m"),
        return_floor=-1.0))  # fmt: skip
    assert merged["return_floor"] == -1.0
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
    with pytest.raises(ValueError, match="is one of --runs"):
        lottery_merge.LotteryMergeConfig(runs=(str(tmp_path / "a"), str(tmp_path / "c")),
                                         out=str(tmp_path / "a"))  # fmt: skip
