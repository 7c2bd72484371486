"""runners/labyrinth_transfer.py with tiny budgets: Labyrinth defaults, the LSTM switch, a run."""

import json

import pytest

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.runners import labyrinth_transfer as runner
from pathevo.runners.plumbing import run_dir as rd

TINY = PathNetA3CConfig(layers=2, modules=4, active=2, units=16, episodes_per_evaluation=1)


def test_defaults_are_labyrinth_levels_with_an_lstm_core_that_can_be_switched_off():
    cfg = runner.LabyrinthTransferConfig()
    assert cfg.env_a == "pathevo/Labyrinth-NavMaze-v0"
    assert cfg.env_b == "pathevo/Labyrinth-StairwayToMelon-v0"
    assert runner.transfer_config(cfg).a3c.lstm == cfg.lstm_units
    off = runner.transfer_config(runner.LabyrinthTransferConfig(lstm=False))
    assert type(off) is runner.TransferConfig and off.a3c.lstm == 0


def test_labyrinth_transfer_smoke_with_tiny_budgets(tmp_path):
    run = tmp_path / "run"
    cfg = runner.LabyrinthTransferConfig(
        workers=2, steps=200, a3c=A3CConfig(t_max=5, hidden=16), lstm_units=16, pathnet=TINY,
        run_dir=str(run), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    assert summary["env_a"] == cfg.env_a and summary["env_b"] == cfg.env_b
    assert set(summary["conditions"]) == {"pathnet", "scratch", "finetune"}
    assert summary["speedup_vs_scratch"] > 0 and summary["speedup_vs_finetune"] > 0
    written = json.loads((run / rd.SUMMARY).read_text())
    assert {"speedup_vs_scratch", "speedup_vs_finetune", "module_reuse", "task_a"} <= set(written)
    assert json.loads((run / rd.CONFIG).read_text())["a3c"]["lstm"] == 16
    assert (run / "learning_curves.png").stat().st_size > 0
    resumed = runner.main(runner.LabyrinthTransferConfig(resume=str(run)))  # finished: read back
    assert resumed["speedup_vs_scratch"] == summary["speedup_vs_scratch"]


def test_bad_settings_are_value_errors_that_write_nothing(tmp_path):
    with pytest.raises(ValueError, match="lstm_units"):
        runner.LabyrinthTransferConfig(lstm_units=0)
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="unknown environment id"):
        runner.main(
            runner.LabyrinthTransferConfig(env_b="pathevo/Labyrinth-Nope-v0", run_dir=str(run))
        )
    assert not run.exists()
