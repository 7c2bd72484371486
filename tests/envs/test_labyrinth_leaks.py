"""Labyrinth envs leave no ViZDoom engine or shared memory behind, and keep memory flat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pathevo.envs.labyrinth import make_labyrinth_env
from pathevo.envs.labyrinth.reaper import OWNER_ENV, SHM_DIR, SHM_PREFIXES, engines_of

REPO = Path(__file__).parents[2]
ENV_ID = "pathevo/Labyrinth-NavMaze-v0"


@pytest.fixture(autouse=True)
def _engine_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _running(pid: int) -> bool:
    """True while ``pid`` is a live engine (a zombie's cmdline is empty: it holds nothing)."""
    try:
        return b"+viz_instance_id" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _segments(instance_ids: list[str]) -> list[Path]:
    paths = (SHM_DIR / f"{p}{i}" for i in instance_ids for p in SHM_PREFIXES)
    return [p for p in paths if p.exists()]


def _wait_until_gone(engines: dict[int, str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(map(_running, engines)) and not _segments(list(engines.values())):
            return
        time.sleep(0.05)
    alive = [pid for pid in engines if _running(pid)]
    for pid in alive:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    pytest.fail(f"left behind: engines {alive}, segments {_segments(list(engines.values()))}")


def _own_engines() -> dict[int, str]:
    return engines_of(os.environ[OWNER_ENV])


def test_close_stops_the_engine_and_frees_shared_memory() -> None:
    env = make_labyrinth_env(ENV_ID, seed=0)
    engines = _own_engines()
    assert len(engines) == 1 and _segments(list(engines.values()))
    env.close()
    _wait_until_gone(engines)


CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathevo.envs.labyrinth import make_labyrinth_env
    from pathevo.envs.labyrinth.reaper import OWNER_ENV, engines_of
    envs = [make_labyrinth_env(i, seed=0) for i in sys.argv[2:]]
    print(json.dumps(engines_of(os.environ[OWNER_ENV])), flush=True)
    if sys.argv[1] == "raise":
        raise RuntimeError("worker crashed")
    if sys.argv[1] == "os._exit":  # how a multiprocessing worker ends: no interpreter teardown
        os._exit(1)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("ending", ["SIGKILL", "raise", "os._exit"])
def test_dead_worker_leaves_nothing_behind(ending: str) -> None:
    ids = [ENV_ID, "pathevo/Labyrinth-LaserTag-v0"] if ending == "SIGKILL" else [ENV_ID]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, ending, *ids],
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        engines = {int(pid): iid for pid, iid in json.loads(child.stdout.readline()).items()}
        assert len(engines) == len(ids) and all(map(_running, engines))
        if ending == "SIGKILL":
            child.kill()
        assert child.wait(timeout=30) != 0
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    _wait_until_gone(engines)


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _memory_stays_flat(cycles: int, resets: int) -> None:
    def make_and_close() -> None:
        env = make_labyrinth_env(ENV_ID, seed=0)
        env.step(0)
        env.close()

    make_and_close()
    before = _rss_mb()
    for _ in range(cycles):
        make_and_close()
    assert _rss_mb() - before < 16
    assert not _own_engines()

    env = make_labyrinth_env(ENV_ID, seed=0)
    try:
        (engine,) = _own_engines()
        env.step(0)
        before, engine_before = _rss_mb(), _rss_mb(engine)
        for _ in range(resets):
            env.reset()
            env.step(0)
        assert _rss_mb() - before < 16
        assert _rss_mb(engine) - engine_before < 16
    finally:
        env.close()


def test_memory_flat_over_make_close_and_resets() -> None:
    _memory_stays_flat(cycles=4, resets=200)


@pytest.mark.slow
def test_memory_flat_over_hundreds_of_make_close_and_thousands_of_resets() -> None:
    _memory_stays_flat(cycles=200, resets=3000)
