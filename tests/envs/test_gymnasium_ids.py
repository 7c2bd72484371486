"""Every pathevo id works through plain gymnasium, as a user who never calls make_env meets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import pathevo.envs  # noqa: F401  (registers every pathevo id)

PATHEVO_IDS = sorted(
    env_id
    for env_id, spec in gym.registry.items()
    if str(spec.entry_point).startswith("pathevo.envs.")
)


def test_import_envs_registers_every_family() -> None:
    assert {"MinAtar/Breakout-v1", "pathevo/Labyrinth-NavMaze-v0"} <= set(PATHEVO_IDS)
    assert len([i for i in PATHEVO_IDS if i.startswith("pathevo/Labyrinth-")]) == 4


def fresh_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_registration_is_cheap_and_module_prefix_ids_import_envs(tmp_path: Path) -> None:
    cheap = fresh_python(
        "import sys, gymnasium, pathevo.envs\n"
        "gymnasium.spec('pathevo/Labyrinth-NavMaze-v0')\n"
        "heavy = {'torch', 'vizdoom', 'ale_py', 'minatar'} & set(sys.modules)\n"
        "assert not heavy, heavy",
        tmp_path,  # outside the checkout: the installed package, not the folder
    )
    assert cheap.returncode == 0, cheap.stderr
    # No `import pathevo.envs`: gymnasium imports the module named before ':'.
    prefixed = fresh_python(
        "import gymnasium\n"
        "env = gymnasium.make('pathevo.envs:pathevo/Labyrinth-NavMaze-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(obs.shape)\n"
        "env.close()",
        tmp_path,  # the engine writes a _vizdoom/ directory into its working directory
    )
    assert prefixed.returncode == 0, prefixed.stderr
    assert prefixed.stdout.split("\n")[-2] == "(4, 84, 84)"


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.parametrize("env_id", PATHEVO_IDS)
def test_plain_gymnasium_make_passes_check_env(
    env_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = gym.make(env_id)
    try:
        check_env(env)
        obs, _ = env.reset(seed=0)
        assert obs in env.observation_space
    finally:
        env.close()
