"""runners/a3c.py: A3C solves CartPole, PathNet-A3C improves, runs resume, errors are one line."""

import json
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.phase import Phase
from pathevo.envs import make_env
from pathevo.runners import a3c as runner
from pathevo.runners.plumbing import run_dir as rd

CARTPOLE_A3C = A3CConfig(optimizer="adam", lr=2e-3, t_max=5, envs_per_worker=4, hidden=64)
"""Measured on a loaded 2-core machine: solved in 24k-35k steps, 27-73 s (docs/a3c.md)."""


def test_plain_a3c_with_two_workers_solves_cartpole(tmp_path):
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", workers=2, steps=150_000, seed=0, target_return=195.0,
        a3c=CARTPOLE_A3C, run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    assert summary["final_mean_return"] >= 195.0, summary["curve"][-5:]
    assert summary["solved"] and summary["steps"] <= 150_000 + 2 * 20
    assert summary["steps_per_second"] > 0


def test_smoke_run_writes_everything_and_resumes(tmp_path):
    run = tmp_path / "run"
    cfg = runner.A3CRunConfig(
        env_id="MinAtar/Breakout-v1", workers=2, steps=600, seed=1, checkpoint_every=200,
        a3c=A3CConfig(t_max=5, hidden=32, lstm=8, log_every=1), run_dir=str(run),
        progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    for key in ("steps", "steps_per_second", "final_mean_return", "curve"):
        assert key in summary
    assert summary["steps"] >= 600
    assert json.loads((run / rd.SUMMARY).read_text())["steps"] == summary["steps"]
    names = {path.name for path in run.iterdir()}
    assert {"config.json", "checkpoint.pt", "learning_curve.png"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)
    # A finished run resumes to its summary without training again.
    assert runner.main(runner.A3CRunConfig(resume=str(run))) == summary
    # A run interrupted after its last checkpoint picks up its model, optimiser and history.
    state = torch.load(run / rd.CHECKPOINT, weights_only=True)
    state["summary"] = None
    rd.save_checkpoint(run, state)
    resumed = runner.main(runner.A3CRunConfig(resume=str(run)))
    assert resumed["steps"] >= summary["steps"]
    assert resumed["episodes"] >= summary["episodes"]


def test_a_run_killed_after_a_checkpoint_resumes_without_duplicated_tensorboard_steps(
    tmp_path, monkeypatch
):
    run, saved = tmp_path / "run", []
    real_save = rd.save_checkpoint

    def keeping(run_dir, state):  # every checkpoint's bytes, as a kill would have left them
        real_save(run_dir, state)
        saved.append((run_dir / rd.CHECKPOINT).read_bytes())

    monkeypatch.setattr(rd, "save_checkpoint", keeping)
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", workers=1, steps=3000, seed=2, checkpoint_every=1000,
        a3c=A3CConfig(t_max=5, hidden=16, envs_per_worker=2, log_every=1), run_dir=str(run),
        progress=False,
    )  # fmt: skip
    runner.main(cfg)
    (run / rd.CHECKPOINT).write_bytes(saved[0])  # killed after the first (step 1000) checkpoint
    checkpoint_steps = int(torch.load(run / rd.CHECKPOINT, weights_only=True)["steps"].sum())
    assert checkpoint_steps < 3000
    resumed = runner.main(runner.A3CRunConfig(resume=str(run)))
    assert resumed["steps"] >= 3000
    events = EventAccumulator(str(run))
    events.Reload()
    for tag in ("charts/mean_return_20", "losses/value_loss"):
        steps = [event.step for event in events.Scalars(tag)]
        assert steps == sorted(steps), tag  # no second copy of the stretch after the checkpoint
        assert steps[0] < checkpoint_steps < steps[-1], tag  # both sessions' parts are there


@pytest.mark.parametrize("agent", ["a3c", "pathnet"])
def test_a_run_directory_of_the_old_checkpoint_layout_resumes(tmp_path, monkeypatch, agent):
    """Before the recipe shared the phase checkpoint (the network beside Phase.state()), it kept
    the population under "population" (None for plain agents): such run directories still
    resume, converted on load, with their counters, optimiser and population."""
    run = tmp_path / "run"
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", agent=agent, workers=2, steps=1000, seed=4,
        a3c=A3CConfig(t_max=5, hidden=16, envs_per_worker=2, log_every=1),
        pathnet=PathNetA3CConfig(layers=2, modules=4, active=2, units=16,
                                 episodes_per_evaluation=1),
        run_dir=str(run), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    new = torch.load(run / rd.CHECKPOINT, weights_only=True)
    population_keys = ("genomes", "fitness", "adoptions")
    assert "population" not in new
    assert {"model", "optimizer", "steps", "log", "summary"} <= set(new)
    assert (set(population_keys) <= set(new)) == (agent == "pathnet")
    old = {key: new[key] for key in ("model", "optimizer", "steps", "log", "summary")}
    old["population"] = {k: new[k] for k in population_keys} if agent == "pathnet" else None
    rd.save_checkpoint(run, old)
    assert runner.main(runner.A3CRunConfig(resume=str(run))) == summary  # finished: as it was
    old["summary"] = None  # killed before its end
    rd.save_checkpoint(run, old)
    starts, real_run = [], Phase.run

    def recorded(phase, *args, **kwargs):
        starts.append(phase.state())
        return real_run(phase, *args, **kwargs)

    monkeypatch.setattr(Phase, "run", recorded)
    resumed = runner.main(runner.A3CRunConfig(resume=str(run)))
    assert torch.equal(starts[0]["steps"], new["steps"]) and starts[0]["log"] == new["log"]
    assert starts[0]["optimizer"]["state"].keys() == new["optimizer"]["state"].keys()
    for key in population_keys if agent == "pathnet" else ():
        torch.testing.assert_close(starts[0][key], new[key], rtol=0, atol=0, equal_nan=True)
    assert resumed["steps"] >= summary["steps"] and resumed["episodes"] >= summary["episodes"]
    assert "population" not in torch.load(run / rd.CHECKPOINT, weights_only=True)


def test_unknown_env_id_is_a_one_line_user_error(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown environment id"):
        runner.main(runner.A3CRunConfig(env_id="CartPol-v1", run_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
    monkeypatch.setattr(sys, "argv", ["a3c.py", "--workers", "0"])
    with pytest.raises(SystemExit) as exit_:
        runner.run_cli(runner.main, runner.A3CRunConfig, "test")
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error
    with pytest.raises(ValueError, match="at least 2 workers"):
        runner.A3CRunConfig(agent="pathnet", workers=1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        A3CConfig(optimizer="sgd")


@pytest.mark.slow
def test_pathnet_a3c_learns_cartpole(tmp_path):
    """Measured: solved (195) at 43k and 66k steps for seeds 1 and 0, 28-52 s of training; but
    repeats at seed 0 differ (Hogwild), and about one in three fell short of 150 in 100k steps."""
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", agent="pathnet", workers=2, steps=150_000, seed=0,
        target_return=195.0, a3c=CARTPOLE_A3C,
        pathnet=PathNetA3CConfig(
            layers=2, modules=4, active=2, units=64, last_reduce="mean",
            episodes_per_evaluation=20, rivals=1,
        ),
        run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    first = summary["curve"][min(19, len(summary["curve"]) - 1)][1]  # random policy: ~20
    best = max(value for _, value in summary["curve"])  # policy gradients can relapse later
    assert best >= 100.0 and best > 4 * first, (first, best, summary["final_mean_return"])


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_pathnet_a3c_learns_minatar_breakout(tmp_path, precision):
    """16 games per worker, t_max 5 (docs/a3c.md: 3-4x the steps/s of 4 games and t_max 10;
    best mean returns over seeds 0-4 in 100k steps 4.03 ± 0.48 against 4.35 ± 0.73). Measured at
    seed 0 (Hogwild runs differ): best mean return 4.2 (float32); bfloat16 with t_max 10: 3.35."""
    cfg = runner.A3CRunConfig(
        env_id="MinAtar/Breakout-v1", agent="pathnet", workers=2, steps=100_000, seed=0,
        a3c=A3CConfig(
            optimizer="adam", lr=2e-3, t_max=5, envs_per_worker=16, precision=precision
        ),
        pathnet=PathNetA3CConfig(
            layers=3, modules=6, active=2, units=32, episodes_per_evaluation=5, rivals=1
        ),
        run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    first = summary["curve"][min(19, len(summary["curve"]) - 1)][1]  # random policy: < 1
    best = max(value for _, value in summary["curve"])
    assert best >= 2.0 and best > 2 * first, (first, best, summary["final_mean_return"])


def random_policy_return(env_id: str, episodes: int, seed: int) -> float:
    """Mean return of uniformly random actions over ``episodes`` episodes."""
    env = make_env(env_id, seed)
    rng = np.random.default_rng(seed)
    total = 0.0
    try:
        for _ in range(episodes):
            env.reset()
            done = False
            while not done:
                _, reward, terminated, truncated, _ = env.step(
                    int(rng.integers(env.action_space.n))
                )
                total += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return total / episodes


@pytest.mark.slow
def test_pathnet_a3c_improves_on_the_labyrinth_maze(tmp_path, monkeypatch):
    """NavMaze from pixels against a random policy (about 11: the first corridor's apples).
    Measured at seed 0 (100k steps, 45-70 s on 2 cores): best 20-episode means of 17.3-19.4 in
    three runs, but one run relapsed to 9.6 at the end (Hogwild runs differ), so the bar is the
    best mean, 4 above the random policy's (a 20-episode mean varies by about 1). The first 20
    episodes already learn (they end together at 8.4k steps), so the bar is a random policy the
    test runs itself, not the start of the curve."""
    monkeypatch.chdir(tmp_path)  # the engine makes a _vizdoom/ directory in the working dir
    env_id = "pathevo/Labyrinth-NavMaze-v0"
    baseline = random_policy_return(env_id, episodes=10, seed=0)
    cfg = runner.A3CRunConfig(
        env_id=env_id, agent="pathnet", workers=2, steps=100_000, seed=0,
        a3c=A3CConfig(optimizer="adam", lr=1e-3, t_max=20, envs_per_worker=8),
        pathnet=PathNetA3CConfig(
            layers=3, modules=4, active=2, units=32, episodes_per_evaluation=8, rivals=1
        ),
        run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    best = max(value for _, value in summary["curve"])
    assert best >= baseline + 4.0, (baseline, best, summary["final_mean_return"])


@pytest.mark.slow
def test_moe_agent_solves_cartpole_with_balanced_experts(tmp_path):
    """Measured: solved at 18.5k steps in 27 s (seed 0), load CV² 0.08 over the 8 experts.
    Hogwild runs of one seed differ, and some do not solve it in 150k steps, most of them with
    the routing on two or three experts (best mean 30-165). Repeats of this test's settings
    (docs/moe.md, "Runs that do not learn"): the current layer 10 of 29 (its small-batch dense
    path 8 of 20, its dispatch 2 of 9), the layer before the speed work (commit 0bc7796) 1 of 14.
    Slow, and flaky at that rate."""
    cfg = runner.A3CRunConfig(
        env_id="CartPole-v1", agent="moe", workers=2, steps=150_000, seed=0,
        target_return=195.0, a3c=CARTPOLE_A3C, run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    assert summary["solved"], summary["curve"][-5:]
    (cv2,) = summary["moe_load_cv2"].values()
    assert cv2 < 1.0  # all 8 experts on 2 picks per observation: 3.0 if only two were used
    events = [p for p in (tmp_path / "run").iterdir() if p.name.startswith("events")]
    assert events and events[0].stat().st_size > 0


def test_pathnet_moe_agent_smoke(tmp_path):
    cfg = runner.A3CRunConfig(
        env_id="MinAtar/Breakout-v1", agent="pathnet-moe", workers=2, steps=400, seed=0,
        a3c=A3CConfig(t_max=5, hidden=16, log_every=1),
        pathnet=PathNetA3CConfig(layers=2, modules=4, active=2, units=8,
                                 episodes_per_evaluation=1),
        run_dir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
    summary = runner.main(cfg)
    assert summary["steps"] >= 400 and "best_path" in summary
    assert set(summary["moe_load_cv2"]) == {"library.layers.1/MinAtar/Breakout-v1"}


def test_unknown_agent_is_a_one_line_error_with_suggestions():
    with pytest.raises(ValueError, match="unknown agent 'pathnet_moe'; did you mean: pathnet-moe"):
        runner.A3CRunConfig(agent="pathnet_moe")
