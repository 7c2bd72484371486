"""Every A3C agent of the registry swaps in with ``--agent`` alone (issue 27): the runner starts
from the agent's own defaults, a flag the user gives wins, ``--help`` lists them, and at those
defaults each agent learns CartPole within three times the budget plain A3C needs."""

import dataclasses
import re

import pytest

from pathevo.agents.registry import AGENTS, agent_names, get_agent
from pathevo.runners import a3c as runner
from pathevo.runners.plumbing.cli import flags_given, parse_config

TUNED = {"a3c.lr": 1e-3, "a3c.recompute": False, "moe.capacity_factor": None, "workers": 4}


def command_line(*args: str) -> runner.A3CRunConfig:
    """The config ``pathevo a3c ARGS`` runs."""
    return runner.with_agent_defaults(parse_config(runner.A3CRunConfig, "test", args), args)


@pytest.fixture
def tuned(monkeypatch) -> str:
    """An agent registered with its own defaults (the plain A3C network)."""
    agent = dataclasses.replace(get_agent("a3c"), name="tuned", defaults=TUNED)
    monkeypatch.setitem(AGENTS, "tuned", agent)
    return "tuned"


def test_the_agents_defaults_replace_the_runners(tuned) -> None:
    cfg = command_line("--agent", tuned)
    assert (cfg.a3c.lr, cfg.a3c.recompute, cfg.moe.capacity_factor, cfg.workers) == (
        1e-3, False, None, 4,
    )  # fmt: skip
    assert cfg.a3c.t_max == runner.A3CConfig().t_max  # the rest: the runner's
    plain = command_line("--agent", "a3c")
    assert plain == runner.A3CRunConfig(agent="a3c")


@pytest.mark.parametrize(
    "flags",
    [
        ["--a3c.lr", "0.01", "--a3c.recompute", "--moe.capacity-factor", "3", "--workers", "2"],
        ["--a3c.lr=0.01", "--a3c.recompute", "--moe.capacity_factor=3", "--workers=2"],
    ],
)
def test_a_flag_the_user_gives_wins_over_the_agents_default(tuned, flags) -> None:
    cfg = command_line("--agent", tuned, *flags)
    assert (cfg.a3c.lr, cfg.a3c.recompute, cfg.moe.capacity_factor, cfg.workers) == (
        0.01, True, 3.0, 2,
    )  # fmt: skip
    # One flag given: the agent's other defaults still hold.
    cfg = command_line("--agent", tuned, "--a3c.no-recompute", "--a3c.lr", "0.01")
    assert (cfg.a3c.lr, cfg.a3c.recompute, cfg.moe.capacity_factor) == (0.01, False, None)


@pytest.mark.parametrize("name", agent_names(trainer="a3c"))
def test_every_a3c_agents_defaults_are_fields_of_the_runners_config(name) -> None:
    cfg = command_line("--agent", name)
    for path, value in AGENTS[name].defaults.items():
        target = cfg
        for part in path.split("."):
            target = getattr(target, part)
        assert target == value, path


def test_the_command_runs_main_with_the_agents_defaults(tuned, monkeypatch) -> None:
    args = ["--agent", tuned, "--a3c.lr", "0.01"]
    monkeypatch.setattr("sys.argv", ["pathevo a3c", *args])
    monkeypatch.setattr(runner, "main", lambda cfg: {"cfg": cfg})
    cfg = runner.cli_main(parse_config(runner.A3CRunConfig, "test", args))["cfg"]
    assert (cfg.a3c.lr, cfg.a3c.recompute, cfg.workers) == (0.01, False, 4)


def test_flags_given_names_field_paths() -> None:
    given = flags_given(["--a3c.t-max", "5", "--a3c.no-recompute", "--moe.w_load=0.1",
                                "--agent", "moe", "None"])  # fmt: skip
    assert {"a3c.t_max", "a3c.recompute", "moe.w_load", "agent"} <= given
    assert "None" not in given and "moe" not in given


def test_help_lists_every_agents_own_defaults(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # one column of groups: lines do not interleave
    with pytest.raises(SystemExit) as exit_:
        parse_config(runner.A3CRunConfig, "test", ["--help"])
    assert exit_.value.code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())
    tuned = [name for name in agent_names(trainer="a3c") if AGENTS[name].defaults]
    assert tuned, "no agent carries defaults: this test then checks nothing"
    for name in tuned:
        assert f"{name}: {AGENTS[name].defaults_text()}" in text, name


A3C_STEPS_TO_195 = 80_000
"""Plain A3C at the runner's defaults (2 workers) first reaches a 20-episode mean of 195 on
CartPole-v1 at 75k, 80k and 77k steps (seeds 0-2); every agent gets three times that."""


@pytest.mark.slow
@pytest.mark.parametrize("name", agent_names(trainer="a3c"))
def test_every_a3c_agent_learns_cartpole_at_its_defaults(tmp_path, name) -> None:
    """Only --agent changes (the stop at 195 only ends a run early). Hogwild runs differ even at
    a fixed seed, so the bar is generous: a best 20-episode mean of 150 (random play: ~22)."""
    cfg = command_line(
        "--env-id", "CartPole-v1", "--agent", name, "--workers", "2", "--seed", "0",
        "--steps", str(3 * A3C_STEPS_TO_195), "--target-return", "195",
        "--run-dir", str(tmp_path / "run"), "--no-progress",
    )  # fmt: skip
    summary = runner.main(cfg)
    best = max(value for _, value in summary["curve"])
    assert best >= 150.0, (best, summary["steps"], summary["final_mean_return"])
