"""runners/transfer_matrix.py: every ordered pair, matrix.json, the heat map, resume, bad ids."""

import json

import pytest

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.runners import atari_transfer
from pathevo.runners import transfer_matrix as runner
from pathevo.runners.plumbing import run_dir as rd

TINY = PathNetA3CConfig(layers=2, modules=4, active=2, units=16, episodes_per_evaluation=1)
ENVS = ("CartPole-v1", "Acrobot-v1")


def tiny_config(run_dir: str) -> runner.MatrixConfig:
    transfer = atari_transfer.TransferConfig(
        workers=2, steps=200, a3c=A3CConfig(t_max=5, hidden=16), pathnet=TINY, progress=False
    )
    return runner.MatrixConfig(envs=ENVS, transfer=transfer, run_dir=run_dir)


def check_matrix(run, matrix):
    assert matrix["envs"] == list(ENVS)
    assert json.loads((run / runner.MATRIX).read_text()) == matrix
    for key in ("pathnet_vs_scratch", "finetune_vs_scratch"):
        assert len(matrix[key]) == 2 and all(len(row) == 2 for row in matrix[key])
        assert matrix[key][0][0] is None and matrix[key][1][1] is None
        assert matrix[key][0][1] > 0 and matrix[key][1][0] > 0
    assert (run / runner.FIGURE).stat().st_size > 0


def test_matrix_of_stubbed_pairs_and_resume_skips_finished_pairs(tmp_path, monkeypatch):
    calls = []

    def fake_main(cfg):  # the transfer runner's summary, without training
        calls.append((cfg.env_a, cfg.env_b))
        steps = {"pathnet": 50, "scratch": 100, "finetune": None}
        summary = {
            "env_a": cfg.env_a, "env_b": cfg.env_b, "steps_per_phase": cfg.steps,
            "conditions": {name: {"steps_to_threshold": s} for name, s in steps.items()},
            "speedup_vs_scratch": 2.0, "speedup_vs_finetune": 4.0,
        }  # fmt: skip
        rd.prepare_run_dir(cfg.run_dir, "atari_transfer", cfg.seed)
        rd.write_json(f"{cfg.run_dir}/{rd.SUMMARY}", summary)
        return summary

    monkeypatch.setattr(atari_transfer, "main", fake_main)
    run = tmp_path / "matrix"
    matrix = runner.main(tiny_config(str(run)))
    check_matrix(run, matrix)
    assert calls == [ENVS, ENVS[::-1]]
    assert matrix["pathnet_vs_scratch"][0][1] == 2.0
    assert matrix["finetune_vs_scratch"][0][1] == 0.5  # never solved: the whole budget of 200
    assert (runner.pair_dir(run, *ENVS) / rd.SUMMARY).exists()
    assert runner.main(runner.MatrixConfig(resume=str(run))) == matrix
    assert len(calls) == 2  # both pairs had a summary.json
    with pytest.raises(ValueError, match="already holds a run"):
        runner.main(tiny_config(str(run)))


@pytest.mark.slow
def test_matrix_smoke_with_tiny_budgets(tmp_path):
    run = tmp_path / "matrix"
    check_matrix(run, runner.main(tiny_config(str(run))))


def test_bad_ids_are_one_line_value_errors_that_write_nothing(tmp_path):
    with pytest.raises(ValueError, match="at least 2 ids"):
        runner.MatrixConfig(envs=("CartPole-v1",))
    with pytest.raises(ValueError, match="duplicate ids"):
        runner.MatrixConfig(envs=("CartPole-v1", "Acrobot-v1", "CartPole-v1"))
    run = tmp_path / "matrix"
    with pytest.raises(ValueError, match="unknown environment id"):
        runner.main(runner.MatrixConfig(envs=("CartPole-v1", "CartPole-v9"), run_dir=str(run)))
    with pytest.raises(ValueError, match="differ"):
        runner.main(runner.MatrixConfig(envs=("CartPole-v1", "MinAtar/Breakout-v1")))
    assert not run.exists()
