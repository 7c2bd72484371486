"""Worker processes never outlive the runner: crashes surface, hangs are terminated."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from pathevo.agents.processes import (
    WorkerError,
    WorkerGroup,
    keep_freed_memory,
    torch_threads,
    worker_process,
)


def crashing_worker(rank: int, worker_queue) -> None:
    with worker_process(rank, worker_queue):
        raise RuntimeError("boom in the worker")


def dying_worker(rank: int, worker_queue) -> None:
    os._exit(3)  # no message, no traceback: as if killed


def hanging_worker(rank: int, worker_queue) -> None:
    with worker_process(rank, worker_queue):
        worker_queue.put({"kind": "episode", "rank": rank, "step": 0})
        while True:
            time.sleep(1)


def killed_once_worker(rank: int, worker_queue, flag: str) -> None:
    """SIGKILLs itself on its first start; reports one episode on the next."""
    with worker_process(rank, worker_queue):
        if not Path(flag).exists():
            Path(flag).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        worker_queue.put({"kind": "episode", "rank": rank, "step": 1})


def test_a_killed_worker_is_restarted_with_its_arguments_and_the_run_goes_on(tmp_path):
    restarts = []
    with WorkerGroup(max_restarts=2, on_restart=lambda *event: restarts.append(event)) as group:
        group.start(killed_once_worker, [(0, group.queue, str(tmp_path / "flag"))])
        messages = list(group.messages())
    assert messages == [{"kind": "episode", "rank": 0, "step": 1}]
    assert group.restarts == [1]
    ((rank, reason, count),) = restarts
    assert rank == 0 and count == 1 and reason.startswith("died by SIGKILL")


def test_a_worker_that_keeps_failing_stops_the_run_with_a_clear_error(tmp_path):
    restarts = []
    failed = r"worker 0 failed 3 times \(last: RuntimeError: boom"
    group = WorkerGroup(
        max_restarts=2, on_restart=lambda *event: restarts.append(event), workdir=tmp_path
    )
    with pytest.raises(WorkerError, match=failed), group:
        group.start(crashing_worker, [(0, group.queue)])
        list(group.messages())
    assert [count for _, _, count in restarts] == [1, 2]
    assert "Traceback" in restarts[0][1]  # the full traceback goes to the restart report


def test_crashed_worker_raises_instead_of_hanging(tmp_path):
    start = time.monotonic()
    group = WorkerGroup(workdir=tmp_path)  # its traceback is kept in tmp_path/worker-0
    with pytest.raises(WorkerError, match="boom in the worker"), group:
        group.start(crashing_worker, [(0, group.queue)])
        list(group.messages())
    assert time.monotonic() - start < 60
    assert all(not p.is_alive() for p in group.processes)


def test_worker_dying_silently_is_reported_with_its_exit_code():
    with pytest.raises(WorkerError, match="exit code 3"), WorkerGroup() as group:
        group.start(dying_worker, [(0, group.queue)])
        list(group.messages())


def test_exception_in_the_runner_terminates_hanging_workers():
    with pytest.raises(KeyError), WorkerGroup(join_timeout=1.0) as group:
        group.start(hanging_worker, [(0, group.queue), (1, group.queue)])
        next(group.messages())
        raise KeyError("runner failed")
    assert all(not p.is_alive() for p in group.processes)
    assert all(p.exitcode is not None for p in group.processes)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_workers_keep_freed_memory_with_glibc():
    assert keep_freed_memory()


def test_torch_threads_sets_and_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("the setting is restored on errors too")
    assert torch.get_num_threads() == before
