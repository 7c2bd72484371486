"""Every runner, SIGKILLed at a checkpoint-rich moment and resumed, goes on from its checkpoint.

A runner is started through its CLI, killed with SIGKILL once it has written a few checkpoints,
and resumed with ``--resume``. Runners whose runs are deterministic (the serial or seeded
supervised and neuroevolution runners) must then give exactly the summary of a run that was
never killed: population, fitness, library, optimiser, counters and RNG state all came back.
The asynchronous A3C runners (Hogwild timing is not reproducible) must start the resumed
session from the checkpoint's population, fitness and step counters, bit for bit. In both,
every TensorBoard curve of every event directory continues without a duplicated stretch.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import SessionLog

from pathevo.agents.phase import Phase
from pathevo.runners.plumbing import run_dir as rd

ROOT = Path(__file__).resolve().parents[2]

TIMING = {"seconds", "steps_per_second", "train_seconds_per_step"}
"""Summary keys that measure wall time: the only ones a resumed run may change."""

EXACT = {
    "binary_digits": [
        "--seed", "3", "--pairs", "1", "--threshold", "0.99", "--max-generations", "5",
        "--evo.population", "6", "--checkpoint-every", "1", "--image-every", "4",
    ],
    "hyperneat": [
        "--env-id", "CartPole-v1", "--generations", "30", "--backend", "serial", "--seed", "3",
        "--population", "6", "--target-species", "2", "--eval-episodes", "2",
        "--hyperneat.hidden", "3", "--hyperneat.episodes", "1",
        "--hyperneat.max-episode-steps", "50",
    ],
    "moe_capacity": [
        "--experts", "1", "2", "4", "--steps", "200", "--eval-every", "100",
        "--log-every", "50",
    ],
    "continual": [
        "--tasks", "digits/0v1", "digits/2v3", "--max-generations", "3",
        "--evo.population", "6", "--threshold", "0.99",
    ],
    "lottery": [
        "--env-id", "digits/3v5", "--rounds", "2", "--steps", "300", "--rewind-to", "20",
    ],
}  # fmt: skip
"""Runner → CLI arguments of a run lasting a few seconds with a checkpoint every few steps."""

TINY_PATHNET = [
    "--a3c.hidden", "16", "--pathnet.layers", "2", "--pathnet.modules", "4",
    "--pathnet.active", "2", "--pathnet.units", "16",
]  # fmt: skip
"""A small PathNet-A3C network (a runner's flags; transfer_matrix's under --transfer.)."""
TINY_TRANSFER = [*TINY_PATHNET, "--a3c.t-max", "5", "--pathnet.episodes-per-evaluation", "1"]

ASYNC = {
    "a3c": [
        "--env-id", "CartPole-v1", "--agent", "pathnet", "--workers", "2", "--steps", "12000",
        "--checkpoint-every", "1500", *TINY_PATHNET,
    ],
    "atari_transfer": [
        "--env-a", "MinAtar/Breakout-v1", "--env-b", "MinAtar/SpaceInvaders-v1",
        "--workers", "2", "--steps", "1600", "--checkpoint-every", "200", "--a3c.log-every", "1",
        *TINY_TRANSFER,
    ],
    "lottery": [
        "--env-id", "CartPole-v1", "--rounds", "1", "--steps", "3000", "--workers", "2",
        "--checkpoint-every", "500", "--rewind-to", "1000", "--a3c.hidden", "16",
        "--a3c.log-every", "1",
    ],
}  # fmt: skip
"""Runner → CLI arguments of an A3C run with checkpoints inside its phases (trainings)."""

SLOW_ASYNC = {
    "labyrinth_transfer": [
        "--workers", "2", "--steps", "1000", "--checkpoint-every", "100", "--lstm-units", "16",
        *TINY_TRANSFER,
    ],
    "transfer_matrix": [
        "--envs", "MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1",
        "--transfer.workers", "2", "--transfer.steps", "1500",
        "--transfer.checkpoint-every", "150", "--transfer.a3c.log-every", "1",
        *(arg.replace("--", "--transfer.", 1) if arg.startswith("--") else arg
          for arg in TINY_TRANSFER),
    ],
}  # fmt: skip


def command(runner: str, *args: str) -> list[str]:
    quiet = "--transfer.no-progress" if runner == "transfer_matrix" else "--no-progress"
    return [sys.executable, "-m", f"pathevo.runners.{runner}", *args, quiet]


def run_to_the_end(runner: str, *args: str) -> None:
    done = subprocess.run(command(runner, *args), cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr


def checkpoints(run: Path) -> list[Path]:
    """Every checkpoint file of a run: its own, and its sub-runs' (a transfer matrix's pairs)."""
    return sorted(run.rglob(rd.CHECKPOINT))


def kill_after_checkpoints(runner: str, args: list[str], run: Path, writes: int) -> None:
    """Start the runner and SIGKILL it once it has written ``writes`` checkpoints (each atomic
    write is a new file: a new inode, or a freed one reused with a new modification time),
    while the run is still going."""
    process = subprocess.Popen(
        command(runner, *args, "--run-dir", str(run)), cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: set[tuple[str, int, int]] = set()
    deadline = time.monotonic() + 300
    try:
        while len(seen) < writes:
            if process.poll() is not None:
                pytest.fail(
                    f"{runner} ended before its checkpoint {writes}: {process.stderr.read()}"
                )
            assert time.monotonic() < deadline, f"{runner} wrote {len(seen)} checkpoints in 300 s"
            for path in checkpoints(run):
                try:
                    stat = path.stat()
                    seen.add((str(path), stat.st_ino, stat.st_mtime_ns))
                except FileNotFoundError:  # renamed over between the listing and the stat
                    continue
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    assert not (run / rd.SUMMARY).exists(), f"{runner} finished before the kill"


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


def session_files(directory: Path) -> list[Path]:
    """The event files of one directory, one per session that wrote there, oldest first."""
    files = list(directory.glob("events.out.tfevents.*"))
    return sorted(files, key=lambda path: next(iter(EventFileLoader(str(path)).Load())).wall_time)


def tagged_steps(path: Path) -> tuple[int | None, dict[str, list[int]]]:
    """An event file's purge step (its session's start, None if it has none) and per tag the
    steps it wrote."""
    purge, steps = None, {}
    for event in EventFileLoader(str(path)).Load():
        if event.HasField("session_log") and event.session_log.status == SessionLog.START:
            purge = event.step
        for value in event.summary.value:
            steps.setdefault(value.tag, []).append(event.step)
    return purge, steps


def assert_curves_continue(run: Path) -> None:
    """In every event directory of the run, TensorBoard shows each scalar's points of the
    earlier sessions before the last session's start, then the last session's: the stretch a
    killed session wrote after its checkpoint was purged, not shown a second time."""
    directories = {path.parent for path in run.rglob("events.out.tfevents.*")}
    assert directories
    for directory in directories:
        events = EventAccumulator(str(directory))
        events.Reload()
        *earlier, last = [tagged_steps(path) for path in session_files(directory)]
        purge, last_steps = last
        assert purge is not None or not earlier, f"{directory}: a resumed session purges nothing"
        for tag in events.Tags()["scalars"]:
            kept = [s for _, steps in earlier for s in steps.get(tag, []) if s < (purge or 0)]
            shown = sorted(event.step for event in events.Scalars(tag))
            where = f"{directory.relative_to(run)}: {tag}"
            assert shown == sorted(kept + last_steps.get(tag, [])), where


SLOW_EXACT = ("continual", "lottery", "moe_capacity")
"""Their in-process resume tests run by default; these CLI kills add 80 s, so run with slow."""


@pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL")
@pytest.mark.parametrize(
    "runner",
    [pytest.param(r, marks=pytest.mark.slow) if r in SLOW_EXACT else r for r in sorted(EXACT)],
)
def test_a_killed_deterministic_run_resumes_to_the_uninterrupted_result(runner, tmp_path):
    run_to_the_end(runner, *EXACT[runner], "--run-dir", str(tmp_path / "straight"))
    kill_after_checkpoints(runner, EXACT[runner], tmp_path / "killed", writes=2)
    run_to_the_end(runner, "--resume", str(tmp_path / "killed"))
    straight, resumed = (json.loads((tmp_path / name / rd.SUMMARY).read_text())
                         for name in ("straight", "killed"))  # fmt: skip
    assert without_timing(resumed) == without_timing(straight)
    assert_curves_continue(tmp_path / "killed")


def sessions_start(monkeypatch) -> list[dict[str, Any]]:
    """Record, at the start of every training phase of this process (every recipe runs its
    phases with :meth:`pathevo.agents.phase.Phase.run`), its network and its checkpoint state:
    shared optimiser, step counters, log and, for path agents, population."""
    starts: list[dict[str, Any]] = []
    real = Phase.run

    def recording(phase: Phase, *args, **kwargs):
        starts.append(copy.deepcopy({"model": phase.model.state_dict(), **phase.state()}))
        return real(phase, *args, **kwargs)

    monkeypatch.setattr(Phase, "run", recording)
    return starts


TRAINING = ("steps", "model", "optimizer", "log")
"""What every A3C checkpoint holds of the phase it was taken in (path agents: and genomes,
fitness, adoptions)."""


def assert_bitwise(started: Any, saved: Any, where: str) -> None:
    """Tensors (in nested dicts and lists) equal bit for bit, NaN where NaN."""
    if isinstance(saved, torch.Tensor):
        torch.testing.assert_close(started, saved, rtol=0, atol=0, equal_nan=True, msg=where)
    elif isinstance(saved, dict):
        assert set(started) == set(saved), where
        for key, value in saved.items():
            assert_bitwise(started[key], value, f"{where}/{key}")
    elif isinstance(saved, list | tuple):
        assert len(started) == len(saved), where
        for index, value in enumerate(saved):
            assert_bitwise(started[index], value, f"{where}/{index}")
    else:
        assert started == saved, where


def phase_in_progress(state: dict[str, Any]) -> dict[str, Any] | None:
    """What a checkpoint holds of the phase it was taken in (network, optimiser, counters,
    log, population), if it was taken inside one: every recipe saves the network beside
    :meth:`pathevo.agents.phase.Phase.state`."""
    if "runs" in state:  # runners/lottery.py: the training in progress of the latest repeat
        current = [run.get("current") for run in state["runs"].values()][-1]
        return None if current is None else current["state"]
    if "model" in state:  # runners/a3c.py: one phase, its state at the top level
        return {key: value for key, value in state.items() if key != "summary"}
    return state.get("current")  # None between two phases: the next one starts afresh


def check_async_resume(runner: str, args: list[str], tmp_path: Path, monkeypatch) -> None:
    from tests.runners.test_cli import RUNNERS, config_type

    run = tmp_path / "killed"
    kill_after_checkpoints(runner, args, run, writes=3)
    (latest,) = [path for path in checkpoints(run) if not (path.parent / rd.SUMMARY).exists()]
    saved = phase_in_progress(rd.load_checkpoint(latest.parent))
    starts = sessions_start(monkeypatch)
    monkeypatch.chdir(ROOT)
    RUNNERS[runner].main(config_type(runner)(resume=str(run)))
    assert saved is not None, "killed between two phases: the test should kill inside one"
    assert set(TRAINING) <= set(starts[0]) <= set(saved)
    if runner != "lottery":  # lottery's default agent is plain A3C: no population
        assert {"genomes", "fitness", "adoptions"} <= set(starts[0])
    for key in starts[0]:  # population, counters, log, network (frozen masks), optimiser
        assert_bitwise(starts[0][key], saved[key], key)
    assert int(starts[0]["steps"].sum()) > 0
    assert (run / ("matrix.json" if runner == "transfer_matrix" else rd.SUMMARY)).exists()
    assert_curves_continue(run)


@pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL")
@pytest.mark.parametrize("runner", sorted(ASYNC))
def test_a_killed_a3c_run_resumes_from_its_checkpoint(runner, tmp_path, monkeypatch):
    check_async_resume(runner, ASYNC[runner], tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL")
@pytest.mark.parametrize("runner", sorted(SLOW_ASYNC))
def test_a_killed_transfer_run_resumes_from_its_checkpoint(runner, tmp_path, monkeypatch):
    check_async_resume(runner, SLOW_ASYNC[runner], tmp_path, monkeypatch)
