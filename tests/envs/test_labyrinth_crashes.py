"""A crashing ViZDoom engine raises in Python; its crash log and dump stay out of the user's
working directory and terminal: in the worker's directory, or this user's private one."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest
import vizdoom as vzd

from pathevo.envs.labyrinth import make_labyrinth_env
from pathevo.envs.labyrinth.doom import ENGINE_LOG, WORKER_DIR_ENV, engine_launcher, private_dir
from pathevo.envs.labyrinth.reaper import OWNER_ENV, engines_of

ENV_ID = "pathevo/Labyrinth-NavMaze-v0"
CRASH_LOG = "vizdoom-crash.log"


def crash_the_engine(env) -> None:
    """SIGSEGV the env's engine; the next steps raise ViZDoom's exception."""
    (pid,) = engines_of(os.environ[OWNER_ENV])
    os.kill(pid, signal.SIGSEGV)
    with pytest.raises((vzd.ViZDoomErrorException, vzd.ViZDoomUnexpectedExitException)):
        for _ in range(1000):
            env.step(0)


def wait_for(path: Path, timeout: float = 20.0) -> str:
    """The text of ``path`` once the engine's crash handler has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and "Segmentation fault" in path.read_text(errors="replace"):
            return path.read_text(errors="replace")
        time.sleep(0.1)
    pytest.fail(f"no crash log at {path}")


def test_a_crashed_engine_writes_its_crash_log_in_the_workers_directory_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    cwd, worker = tmp_path / "cwd", tmp_path / "worker-0"
    cwd.mkdir()
    worker.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv(WORKER_DIR_ENV, str(worker))
    env = make_labyrinth_env(ENV_ID, seed=0)
    try:
        crash_the_engine(env)
        assert "Segmentation fault" in wait_for(worker / CRASH_LOG)
        assert "Fatal Error" in (worker / ENGINE_LOG).read_text()  # the handler's dump
        env.reset(seed=1)  # a new engine starts, in the same directory
        env.step(0)
    finally:
        env.close()
    assert list(cwd.iterdir()) == []
    assert "Fatal Error" not in capfd.readouterr().err


def test_outside_a_worker_the_engine_runs_in_this_users_private_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(WORKER_DIR_ENV, raising=False)
    env = make_labyrinth_env(ENV_ID, seed=0)
    try:
        (pid,) = engines_of(os.environ[OWNER_ENV])
        assert Path(f"/proc/{pid}/cwd").resolve() == private_dir().resolve()
    finally:
        env.close()
    assert list(tmp_path.iterdir()) == []


def test_the_launcher_is_the_users_own() -> None:
    launcher = Path(engine_launcher())
    assert launcher.parent == private_dir()
    for path in (launcher, launcher.parent):
        info = path.stat()
        assert info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    assert engine_launcher() == str(launcher)  # written once, then reused
