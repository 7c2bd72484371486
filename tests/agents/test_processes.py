"""Worker processes never outlive the runner: crashes surface, hangs are terminated."""

import os
import sys
import time

import pytest

from agents.processes import WorkerError, WorkerGroup, keep_freed_memory, worker_process


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


def test_crashed_worker_raises_instead_of_hanging():
    start = time.monotonic()
    with pytest.raises(WorkerError, match="boom in the worker"), WorkerGroup() as group:
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
