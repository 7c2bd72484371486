"""runners/transfer_matrix.py: units shared between pairs, seeds, both speed-up measures with
intervals, the partial matrix, resume (adding seeds), the heat map, bad input."""

import json
import math
import subprocess
import sys

import pytest

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.runners import atari_transfer
from pathevo.runners import transfer_matrix as runner
from pathevo.runners.plumbing import run_dir as rd

TINY = PathNetA3CConfig(layers=2, modules=4, active=2, units=16, episodes_per_evaluation=1)
ENVS = ("CartPole-v1", "Acrobot-v1")


def tiny_config(run_dir: str, repeats: int = 1, **kwargs) -> runner.MatrixConfig:
    transfer = atari_transfer.TransferConfig(
        workers=2, steps=200, a3c=A3CConfig(t_max=5, hidden=16), pathnet=TINY, progress=False
    )
    return runner.MatrixConfig(
        envs=ENVS, transfer=transfer, run_dir=run_dir, repeats=repeats, **kwargs
    )


def test_units_share_each_games_scratch_run_between_its_pairs():
    units = runner.units_of(runner.MatrixConfig(envs=("A-v0", "B-v0", "C-v0"), repeats=2))
    assert len(units) == 2 * (3 + 2 * 6)  # per seed: 3 learn, and 6 pairs x (pathnet, finetune)
    assert len(set(units)) == len(units)
    first_seed = units[:15]
    assert [u.kind for u in first_seed[:3]] == ["learn"] * 3  # learned before any pair needs them
    assert {u.seed for u in first_seed} == {0}
    pair = runner.Unit("pathnet", 1, "A-v0", "B-v0")
    assert pair.source() == runner.Unit("learn", 1, "A-v0", "A-v0")
    assert pair.path(runner.Path("run")).as_posix() == "run/s1/pathnet__A-v0__B-v0"


def episodes(start: float, slope: float, steps: int = 200, every: int = 4) -> list[list[float]]:
    """A run's (step, return) records: a return rising by ``slope`` per step."""
    return [[step, start + slope * step] for step in range(every, steps + 1, every)]


def fake_results(cfg: runner.MatrixConfig, slopes: dict[str, float]) -> dict:
    """Finished units whose returns rise with the slope of their kind."""
    return {
        unit: {"episodes": episodes(1.0, slopes[unit.kind]), "worker_restarts": 1}
        for unit in runner.units_of(cfg)
    }


def test_measures_per_seed_and_geometric_means_with_intervals():
    cfg = tiny_config("unused", repeats=3, thresholds=(10.0, 10.0))
    results = fake_results(cfg, {"learn": 0.05, "pathnet": 0.1, "finetune": 0.05})
    matrix = runner.build_matrix(cfg, results)
    assert matrix["units_done"] == matrix["units_total"] == 3 * (2 + 4)
    assert matrix["worker_restarts"] == 18
    pair = matrix["pairs"][0]
    assert (pair["env_a"], pair["env_b"]) == ENVS and set(pair["seeds"]) == {"0", "1", "2"}
    seed = pair["seeds"]["0"]
    # the 20-episode mean ending at step s is 1 + slope * (s - 38): 10 at s = 128 for slope
    # 0.1; never within 200 steps for 0.05 (counted as the whole budget)
    assert seed["steps_to_threshold"]["learn"] is None
    assert seed["steps_to_threshold"]["pathnet"] == 128
    assert seed["pathnet_vs_scratch"]["steps"] == 200 / 128
    assert seed["finetune_vs_scratch"]["steps"] == 1.0
    area = seed["area"]
    assert seed["pathnet_vs_scratch"]["area"] == pytest.approx(area["pathnet"] / area["learn"])
    assert 1.5 < seed["pathnet_vs_scratch"]["area"] < 2.0
    summary = pair["summary"]["pathnet_vs_scratch"]["steps"]
    assert summary["seeds"] == 3 and summary["above_1"] == 3
    assert summary["low"] == pytest.approx(summary["mean"]) == pytest.approx(summary["high"])
    grid = matrix["steps"]["pathnet_vs_scratch"]
    assert grid["mean"][0][0] is None and grid["mean"][0][1] == pytest.approx(summary["mean"])
    assert grid["seeds"][1][0] == 3
    overall = matrix["mean_over_pairs"]["pathnet_vs_scratch"]["area"]
    assert overall["seeds"] == 3 and overall["mean"] > 1.5
    assert matrix["scratch"]["CartPole-v1"]["seeds"] == 3


def test_intervals_widen_with_the_spread_over_seeds_and_partial_matrices_count_what_finished():
    cfg = tiny_config("unused", repeats=3, thresholds=(10.0, 10.0))
    results = fake_results(cfg, {"learn": 0.05, "pathnet": 0.1, "finetune": 0.05})
    for unit in results:  # seed 1's PathNet runs learn slowly: no longer faster there
        if unit.seed == 1 and unit.kind == "pathnet":
            results[unit]["episodes"] = episodes(1.0, 0.02)
    summary = runner.build_matrix(cfg, results)["pairs"][0]["summary"]["pathnet_vs_scratch"]
    steps = summary["steps"]
    assert steps["low"] < steps["mean"] < steps["high"] and steps["below_1"] == 0
    assert summary["area"]["below_1"] == 1  # its area is below scratch's
    partial = {u: r for u, r in results.items() if u.seed == 0 or u.kind == "learn"}
    matrix = runner.build_matrix(cfg, partial)
    assert matrix["units_done"] == 3 * 2 + 4
    assert matrix["pairs"][0]["summary"]["pathnet_vs_scratch"]["steps"]["seeds"] == 1
    assert matrix["pairs"][0]["summary"]["pathnet_vs_scratch"]["steps"]["low"] is None
    assert matrix["mean_over_pairs"]["pathnet_vs_scratch"]["steps"]["seeds"] == 1


def test_default_thresholds_come_from_every_run_on_the_target():
    cfg = tiny_config("unused")
    results = fake_results(cfg, {"learn": 0.05, "pathnet": 0.1, "finetune": 0.05})
    thresholds = runner.build_matrix(cfg, results)["thresholds"]
    # 20-episode means from 1 + 0.05 * 42 (the first full window) to 1 + 0.1 * 162 (pathnet)
    low, high = 1 + 0.05 * 42, 1 + 0.1 * 162
    assert thresholds["CartPole-v1"] == pytest.approx(low + 0.5 * (high - low))


def test_matrix_trains_its_units_resumes_and_adds_seeds(tmp_path, monkeypatch):
    trained = []
    train_phase = atari_transfer.train_phase

    def counting(cfg, state, *args, **kwargs):
        trained.append((cfg.seed, cfg.env_a, cfg.env_b, atari_transfer.PHASES[state["phase"]]))
        return train_phase(cfg, state, *args, **kwargs)

    monkeypatch.setattr(atari_transfer, "train_phase", counting)
    run = tmp_path / "matrix"
    matrix = runner.main(tiny_config(str(run)))
    assert len(trained) == 6 and trained[:2] == [(0, e, e, "pathnet_a") for e in ENVS]
    assert json.loads((run / runner.MATRIX).read_text()) == json.loads(json.dumps(matrix))
    assert matrix["units_done"] == 6 and matrix["pairs"][0]["seeds"]["0"]["steps_to_threshold"]
    assert (run / runner.FIGURE).stat().st_size > 0
    learn = runner.Unit("learn", 0, ENVS[0], ENVS[0]).path(run)
    pair = runner.Unit("pathnet", 0, *ENVS).path(run)
    assert (learn / rd.CHECKPOINT).exists() and not (pair / rd.CHECKPOINT).exists()
    assert (pair / "pathnet_b").is_dir()  # its TensorBoard events
    # A resume with more seeds trains only the new seed's units.
    again = runner.main(runner.MatrixConfig(resume=str(run), repeats=2))
    assert len(trained) == 12 and {seed for seed, *_ in trained[6:]} == {1}
    assert again["seeds"] == [0, 1] and again["units_done"] == 12
    assert rd.load_config(run, runner.MatrixConfig).repeats == 2
    assert runner.main(runner.MatrixConfig(resume=str(run)))["units_done"] == 12
    assert len(trained) == 12
    with pytest.raises(ValueError, match="already holds a run"):
        runner.main(tiny_config(str(run)))


def test_an_interrupted_matrix_keeps_its_partial_matrix_and_resumes(tmp_path, monkeypatch):
    run = tmp_path / "matrix"
    calls = {"n": 0}
    train_phase = atari_transfer.train_phase

    def interrupted_in_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return train_phase(*args, **kwargs)

    monkeypatch.setattr(atari_transfer, "train_phase", interrupted_in_the_third)
    with pytest.raises(KeyboardInterrupt):
        runner.main(tiny_config(str(run)))
    assert json.loads((run / runner.MATRIX).read_text())["units_done"] == 2  # partial matrix
    learn = runner.Unit("learn", 0, ENVS[0], ENVS[0]).path(run)
    (learn / rd.CHECKPOINT).rename(run / "kept.pt")  # its pairs start from it: refused up front
    with pytest.raises(ValueError, match="no finished network"):
        runner.main(runner.MatrixConfig(resume=str(run)))
    (run / "kept.pt").rename(learn / rd.CHECKPOINT)
    # Killed after its training's last checkpoint, before its result: nothing to train again.
    (learn / runner.RESULT).unlink()
    assert runner.main(runner.MatrixConfig(resume=str(run)))["units_done"] == 6
    assert calls["n"] == 7  # the learn units were not trained again: 4 transfers and the raise
    assert json.loads((learn / runner.RESULT).read_text())["kind"] == "learn"


@pytest.mark.slow
def test_labyrinth_pair_over_two_seeds_through_the_cli(tmp_path):
    """Two Labyrinth levels, two seeds, tiny budgets (three 525-step episodes an env): per-seed
    fields and intervals in matrix.json, nothing written to the working directory."""
    run, cwd = tmp_path / "matrix", tmp_path / "cwd"
    cwd.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pathevo.runners.transfer_matrix", "--envs",
         "pathevo/Labyrinth-NavMaze-v0", "pathevo/Labyrinth-SeekAvoid-v0", "--repeats", "2",
         "--transfer.workers", "2", "--transfer.steps", "3200", "--transfer.a3c.t-max", "5",
         "--transfer.a3c.envs-per-worker", "1", "--transfer.pathnet.layers", "2",
         "--transfer.pathnet.modules", "3", "--transfer.pathnet.active", "2",
         "--transfer.pathnet.units", "8", "--transfer.pathnet.episodes-per-evaluation", "1",
         "--transfer.no-progress", "--run-dir", str(run)],
        cwd=cwd, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(cwd.iterdir()) == []
    matrix = json.loads((run / runner.MATRIX).read_text())
    assert matrix["seeds"] == [0, 1] and matrix["units_done"] == matrix["units_total"] == 12
    assert len(matrix["pairs"]) == 2
    for pair in matrix["pairs"]:
        assert set(pair["seeds"]) == {"0", "1"}
        for seed in pair["seeds"].values():
            assert set(seed["steps_to_threshold"]) == {"learn", "pathnet", "finetune"}
            assert set(seed["area"]) == {"learn", "pathnet", "finetune"}
            for key in runner.COMPARISONS:
                assert seed[key]["steps"] > 0 and seed[key]["censored"] in (0, 1, 2)
                assert seed[key]["area"] is None or seed[key]["area"] > 0
        steps = pair["summary"]["pathnet_vs_scratch"]["steps"]
        assert steps["seeds"] == 2 and steps["low"] <= steps["mean"] <= steps["high"]
        censored = steps["censored_one"] + steps["censored_both"]
        assert 0 <= censored <= 2 and "pathnet_vs_finetune" in pair["summary"]
    overall = matrix["mean_over_pairs"]["pathnet_vs_scratch"]["steps"]
    assert overall["seeds"] == 2 and math.isfinite(overall["mean"])
    assert matrix["worker_restarts"] == 0 and set(matrix["scratch"]) == set(matrix["envs"])
    assert "over 2 of 2 seeds" in done.stdout


def test_bad_ids_are_one_line_value_errors_that_write_nothing(tmp_path):
    with pytest.raises(ValueError, match="at least 2 ids"):
        runner.MatrixConfig(envs=("CartPole-v1",))
    with pytest.raises(ValueError, match="duplicate ids"):
        runner.MatrixConfig(envs=("CartPole-v1", "Acrobot-v1", "CartPole-v1"))
    with pytest.raises(ValueError, match="repeats must lie in 1..99"):
        runner.MatrixConfig(repeats=0)
    with pytest.raises(ValueError, match="one value per id"):
        runner.MatrixConfig(envs=ENVS, thresholds=(1.0,))
    run = tmp_path / "matrix"
    with pytest.raises(ValueError, match="unknown environment id"):
        runner.main(runner.MatrixConfig(envs=("CartPole-v1", "CartPole-v9"), run_dir=str(run)))
    with pytest.raises(ValueError, match="differ"):
        runner.main(runner.MatrixConfig(envs=("CartPole-v1", "MinAtar/Breakout-v1")))
    assert not run.exists()
