"""A runner killed outright (SIGKILL, as the OOM killer does) leaves no process of it behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RUNS = {
    "a3c-workers": [
        "-m", "pathevo.runners.a3c", "--env-id", "CartPole-v1", "--workers", "2",
        "--steps", "150000", "--checkpoint-every", "2000",
    ],
    "pathnet-workers": [
        "-m", "pathevo.runners.a3c", "--env-id", "CartPole-v1", "--agent", "pathnet",
        "--workers", "2", "--steps", "150000", "--checkpoint-every", "2000",
    ],
    "process-pool": [
        "-m", "pathevo.runners.binary_digits", "--backend", "processes", "--workers", "2",
        "--checkpoint-every", "1",
    ],
}  # fmt: skip
"""Runs whose first checkpoint is written once the workers have done some work: by then they
are past their start-up (a worker killed while it still imports dies when it gets going)."""


def process_table() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, state) of every process; zombies included (state Z)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> set[int]:
    table, found, frontier = process_table(), set(), {pid}
    while frontier:
        frontier = {child for child, (parent, _) in table.items() if parent in frontier}
        found |= frontier
    return found


def running(pids: set[int]) -> set[int]:
    table = process_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def spawned_workers(pids: set[int]) -> set[int]:
    workers = set()
    for pid in pids:
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.add(pid)
        except OSError:
            continue
    return workers


def wait_for_first_checkpoint(runner: subprocess.Popen, run: Path, seconds: float) -> None:
    """Until ``run`` has a checkpoint: the workers have done some work by then."""
    deadline = time.monotonic() + seconds
    while not (run / "checkpoint.pt").exists():
        assert runner.poll() is None, "the runner ended before its first checkpoint"
        assert time.monotonic() < deadline, "the workers never got going"
        time.sleep(0.2)


def still_running_after(pids: set[int], seconds: float) -> set[int]:
    """Those of ``pids`` that still run (not zombies) ``seconds`` from now, or sooner if none."""
    deadline = time.monotonic() + seconds
    while running(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return running(pids)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("run", sorted(RUNS))
def test_sigkilled_runner_leaves_no_process(run: str, tmp_path: Path) -> None:
    command = [sys.executable, *RUNS[run], "--no-progress", "--run-dir", str(tmp_path / "run")]
    runner = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_first_checkpoint(runner, tmp_path / "run", 180)
        children = descendants(runner.pid)  # workers and multiprocessing's resource tracker
        assert len(spawned_workers(children)) >= 2
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    left = still_running_after(children, 10)
    assert not left, f"left behind: {sorted(left)}"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_sigkilled_worker_is_restarted_and_the_run_completes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "pathevo.runners.a3c", "--env-id", "CartPole-v1", "--workers", "2",
        "--steps", "30000", "--checkpoint-every", "2000", "--no-progress", "--run-dir", str(run),
    ]  # fmt: skip
    runner = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_first_checkpoint(runner, run, 180)
        workers = spawned_workers(descendants(runner.pid))
        assert len(workers) == 2
        os.kill(min(workers), signal.SIGKILL)
        _, stderr = runner.communicate(timeout=300)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, stderr
    assert "failed and was restarted (1 of 3)" in stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["worker_restarts"] == 1 and summary["steps"] >= 30000


def ray_processes(pids: set[int]) -> dict[int, str]:
    """pid → command of the Ray processes among ``pids`` that belong to the run: its worker
    actors, the parameter server, the raylet and the GCS (Ray's dashboard and runtime-env
    agents outlive a killed driver by about 90 s and then exit: docs/ray.md)."""
    found = {}
    for pid in pids:
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(name in line for name in RAY_OWNED):
            found[pid] = line[:80]
    return found


RAY_OWNED = ("ray::WorkerActor", "ray::ParameterServer", "raylet", "gcs_server")


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_ray_actors_die_with_a_sigkilled_runner(tmp_path: Path) -> None:
    if os.environ.get("CI") != "true":  # CI installs the ray extra: this test must run there
        pytest.importorskip("ray")
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "pathevo.runners.a3c", "--env-id", "CartPole-v1",
        "--agent", "pathnet", "--workers", "2", "--steps", "500000", "--checkpoint-every", "2000",
        "--backend", "ray", "--no-progress", "--run-dir", str(run),
    ]  # fmt: skip
    runner = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_first_checkpoint(runner, run, 240)
        owned = ray_processes(descendants(runner.pid))
        kinds = " ".join(owned.values())
        assert kinds.count("ray::WorkerActor") == 2 and "ray::ParameterServer" in kinds, kinds
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    left = {pid: owned[pid] for pid in still_running_after(set(owned), 15)}
    assert not left, f"left behind: {left}"
