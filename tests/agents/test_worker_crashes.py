"""A worker killed by a signal (a crashing game engine, native code) is restarted: one line on
stderr naming the signal, counted in the phase's log, its dump and any crash log in the run's
worker directory, nothing in the user's working directory."""

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from pathevo.agents.phase import run_phase
from pathevo.agents.phase_log import PhaseLog
from pathevo.agents.phase_reporters import RestartReporter
from pathevo.agents.processes import (
    STDERR_LOG,
    WORKER_DIR_ENV,
    WorkerError,
    WorkerGroup,
    exit_reason,
    worker_process,
)


def segfaults_once(rank: int, steps: torch.Tensor, queue, marker: str, budget: int) -> None:
    """Crashes as native code does (SIGSEGV) on its first start, after writing a "crash log"
    into its working directory as ViZDoom's engine does; does its steps on the next start."""
    with worker_process(rank, queue):
        if not Path(marker).exists():
            Path(marker).touch()
            Path(os.environ[WORKER_DIR_ENV], "engine-crash.log").write_text("engine dump\n")
            os.kill(os.getpid(), signal.SIGSEGV)
        steps[rank] += budget
        queue.put({"kind": "update", "rank": rank, "step": int(steps.sum())})


def always_segfaults(rank: int, queue) -> None:
    with worker_process(rank, queue):
        os.kill(os.getpid(), signal.SIGSEGV)


def finishes(rank: int, queue) -> None:
    with worker_process(rank, queue):
        queue.put({"kind": "update", "rank": rank, "step": 1})


class Writer:
    """Records the TensorBoard text a reporter writes."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str, int]] = []

    def add_text(self, tag: str, text: str, step: int) -> None:
        self.texts.append((tag, text, step))


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's working directory: empty, and it must stay so."""
    directory = tmp_path / "cwd"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def test_a_segfaulted_worker_is_restarted_counted_and_reported_in_one_line(cwd, tmp_path, capfd):
    steps, log, writer = torch.zeros(1, dtype=torch.long).share_memory_(), PhaseLog(), Writer()
    workdir = tmp_path / "run" / "workers"
    marker = str(tmp_path / "crashed")
    run_phase(
        segfaults_once, lambda group: [(0, steps, group.queue, marker, 100)], steps=steps,
        budget=100, log=log, reporters=[RestartReporter(writer, "train")], max_restarts=2,
        workdir=workdir,
    )  # fmt: skip
    assert int(steps.sum()) == 100 and log.worker_restarts == 1
    assert list(cwd.iterdir()) == []
    worker = workdir / "worker-0"
    assert (worker / "engine-crash.log").read_text() == "engine dump\n"
    assert "Segmentation fault" in (worker / STDERR_LOG).read_text()  # the Python stack dump
    # What the user sees: one line that names the signal and where its files are.
    (line,) = capfd.readouterr().err.strip().splitlines()
    assert line == (
        "train: worker 0 failed and was restarted (1 of 2): died by SIGSEGV (a crash in native"
        f" code, such as a game engine?) — see {worker}"
    )
    ((tag, text, _),) = writer.texts
    assert tag == "events/worker_restarts" and text == line.removeprefix("train: ")


def test_a_worker_that_keeps_segfaulting_stops_the_run_naming_the_signal(cwd, tmp_path):
    group = WorkerGroup(max_restarts=1, workdir=tmp_path / "workers")
    failed = r"worker 0 failed 2 times \(last: died by SIGSEGV \(a crash in native code"
    with pytest.raises(WorkerError, match=failed), group:
        group.start(always_segfaults, [(0, group.queue)])
        list(group.messages())
    assert group.restarts == [1]
    assert list(cwd.iterdir()) == []


def test_without_restarts_the_error_names_the_signal_and_shows_the_workers_dump(cwd, tmp_path):
    with pytest.raises(WorkerError) as error, WorkerGroup(workdir=tmp_path / "w") as group:
        group.start(always_segfaults, [(0, group.queue)])
        list(group.messages())
    message = str(error.value)
    assert message.startswith("worker 0 failed: died by SIGSEGV")
    assert "Fatal Python error: Segmentation fault" in message  # the tail of its stderr log
    assert "always_segfaults" in message
    assert list(cwd.iterdir()) == []


def test_a_raising_workers_traceback_still_reaches_the_runner(cwd, tmp_path):
    def report(rank: int, reason: str, restarts: int) -> None:
        reasons.append(reason)

    reasons: list[str] = []
    group = WorkerGroup(max_restarts=1, on_restart=report, workdir=tmp_path / "w")
    with pytest.raises(WorkerError, match=r"failed 2 times \(last: RuntimeError: boom"), group:
        group.start(raising, [(0, group.queue)])
        list(group.messages())
    (reason,) = reasons
    what, traceback = reason.split("\n", 1)
    assert what == f"RuntimeError: boom — see {tmp_path / 'w' / 'worker-0'}"
    assert traceback.startswith("Traceback") and 'raise RuntimeError("boom")' in traceback
    without_restarts = WorkerGroup(workdir=tmp_path / "w0")
    with (
        pytest.raises(WorkerError, match=r"(?s)worker 0 failed:\nTraceback.*boom"),
        without_restarts,
    ):
        without_restarts.start(raising, [(0, without_restarts.queue)])
        list(without_restarts.messages())
    assert list(cwd.iterdir()) == []


def raising(rank: int, queue) -> None:
    with worker_process(rank, queue):
        raise RuntimeError("boom")


def test_a_clean_run_leaves_no_worker_directory_behind(cwd):
    with WorkerGroup() as group:
        group.start(finishes, [(0, group.queue), (1, group.queue)])
        assert len(list(group.messages())) == 2
        assert group.workdir.is_dir()
    assert not group.workdir.exists()
    assert list(cwd.iterdir()) == []


def test_a_given_workdir_is_made_and_removed_again_if_nothing_was_written(tmp_path):
    with WorkerGroup(workdir=tmp_path / "run" / "workers") as group:
        group.start(finishes, [(0, group.queue)])
        list(group.messages())
    assert list((tmp_path / "run").iterdir()) == []


def test_the_restart_line_is_one_line_and_tensorboard_gets_the_traceback(capfd):
    writer = Writer()
    reason = "RuntimeError: boom — see /run/w/worker-3\nTraceback (most recent call last):\n  x"
    RestartReporter(writer).restarted(rank=3, reason=reason, restarts=1, max_restarts=3, done=7)
    assert capfd.readouterr().err == (
        "worker 3 failed and was restarted (1 of 3): RuntimeError: boom — see /run/w/worker-3\n"
    )
    ((_, text, step),) = writer.texts
    assert step == 7 and "Traceback (most recent call last):\n  x" in text


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (-signal.SIGSEGV, "died by SIGSEGV (a crash in native code, such as a game engine?)"),
        (-signal.SIGABRT, "died by SIGABRT (a crash in native code, such as a game engine?)"),
        (-signal.SIGKILL, "died by SIGKILL (out of memory, or killed by hand?)"),
        (-signal.SIGTERM, "died by SIGTERM"),
        (-200, "died by signal 200"),
        (3, "died with exit code 3"),
    ],
)
def test_exit_reasons_name_the_signal(code: int, expected: str) -> None:
    assert exit_reason(code) == expected


def test_the_labyrinth_engine_reads_the_worker_directory_from_the_same_variable():
    pytest.importorskip("vizdoom")
    from pathevo.envs.labyrinth import doom

    assert doom.WORKER_DIR_ENV == WORKER_DIR_ENV


def engine_crashes_once(rank: int, steps: torch.Tensor, queue, marker: str) -> None:
    """A Labyrinth worker whose game engine segfaults on its first start."""
    from pathevo.envs import make_env
    from pathevo.envs.labyrinth.reaper import OWNER_ENV, engines_of

    with worker_process(rank, queue):
        env = make_env("pathevo/Labyrinth-NavMaze-v0", rank)
        if not Path(marker).exists():
            Path(marker).touch()
            (engine,) = engines_of(os.environ[OWNER_ENV])
            os.kill(engine, signal.SIGSEGV)
        for _ in range(1000):
            env.step(0)  # raises ViZDoom's exception once its engine has crashed
            steps[rank] += 1
        queue.put({"kind": "update", "rank": rank, "step": int(steps.sum())})
        env.close()


@pytest.mark.slow  # about 8 s: two workers' start-ups with a game engine, its crash handler
def test_a_crashing_game_engine_is_a_restarted_worker_and_leaves_the_cwd_alone(
    cwd, tmp_path, capfd
):
    pytest.importorskip("vizdoom")
    steps, log = torch.zeros(1, dtype=torch.long).share_memory_(), PhaseLog()
    workdir, marker = tmp_path / "run" / "workers", str(tmp_path / "crashed")
    run_phase(
        engine_crashes_once, lambda group: [(0, steps, group.queue, marker)], steps=steps,
        budget=1000, log=log, reporters=[RestartReporter(Writer(), "train")], max_restarts=1,
        workdir=workdir,
    )  # fmt: skip
    assert log.worker_restarts == 1 and int(steps.sum()) >= 1000
    assert list(cwd.iterdir()) == []
    (line,) = capfd.readouterr().err.strip().splitlines()
    assert line.startswith("train: worker 0 failed and was restarted (1 of 1): ")
    assert "ViZDoom" in line and str(workdir / "worker-0") in line
    deadline = time.monotonic() + 20  # the engine's crash handler may still be writing
    while not (workdir / "worker-0" / "vizdoom-crash.log").exists():
        assert time.monotonic() < deadline, "no crash log in the worker's directory"
        time.sleep(0.1)
