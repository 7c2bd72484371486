"""Worker processes for Hogwild training: spawn, collect metrics, always stop them.

Runners own the process lifetimes through :class:`WorkerGroup`: workers are started with the
*spawn* context, report over one queue (they never write TensorBoard themselves), and are
stopped, joined and if need be terminated when the ``with`` block exits — normally, on an
exception, or on Ctrl-C — and each worker dies with its runner even when the runner is killed
outright (:func:`pathevo.evolution.lifetime.die_with_parent`), so no worker outlives its runner. A
worker that raises sends its traceback and the runner's loop re-raises it as
:class:`WorkerError` instead of waiting forever — or, with ``max_restarts`` > 0, a worker that
raised or died (SIGKILL, the OOM killer) is started again with the same arguments (its slot of a
shared population, so its genome; a fresh environment) and the run goes on; a worker that fails
more than ``max_restarts`` times stops the run with a :class:`WorkerError`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import queue as queue_module
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import torch
import torch.multiprocessing as mp

from pathevo.evolution.lifetime import die_with_parent


class WorkerError(RuntimeError):
    """A worker process failed (raised, or died without a word)."""


def check_restart_budget(rank: int, reason: str, restarts: int, max_restarts: int) -> None:
    """Raise :class:`WorkerError` if worker ``rank``, failed again (``reason``), has used up
    its ``max_restarts`` restarts (``restarts`` so far); every worker group asks this."""
    if restarts >= max_restarts:
        raise WorkerError(
            f"worker {rank} failed {restarts + 1} times (last: {reason}); stopping the run"
        )


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Ask glibc to keep freed blocks of up to ``mmap_threshold`` bytes for reuse.

    By default glibc serves blocks of a few MB (a rollout's activations) with ``mmap`` and hands
    them back to the OS when freed, so every update page-faults its tensors in afresh: about a
    third of the time of a no-grad forward pass of a rollout batch. Returns False where there is
    no glibc (nothing changes there).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads, then restore the process's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def worker_process(rank: int, queue: Any) -> Iterator[None]:
    """The body of every worker: dies with the runner, one torch thread, errors reported."""
    die_with_parent()
    torch.set_num_threads(1)
    keep_freed_memory()
    try:
        yield
    except KeyboardInterrupt:
        return  # Ctrl-C reaches the whole process group; the runner shuts everything down
    except BaseException:
        queue.put({"kind": "error", "rank": rank, "traceback": traceback.format_exc()})
        raise


class WorkerGroup:
    """Processes running ``target(*args)``, a metrics queue and a shared stop flag.

    Example:
        >>> with WorkerGroup() as group:  # doctest: +SKIP
        ...     group.start(a3c_worker, [(rank, spec) for rank in range(2)])
        ...     for message in group.messages():
        ...         print(message)
    """

    def __init__(
        self,
        join_timeout: float = 10.0,
        max_restarts: int = 0,
        on_restart: Callable[[int, str, int], None] | None = None,
    ) -> None:
        self.context = mp.get_context("spawn")
        self.queue = self.context.Queue()
        self.stop = torch.zeros((), dtype=torch.bool).share_memory_()
        """Set by the runner to ask workers to finish their current update and exit."""
        self.join_timeout = join_timeout
        self.max_restarts = max_restarts
        """Restarts allowed per worker; 0: the first failure raises :class:`WorkerError`."""
        self.on_restart = on_restart
        """``on_restart(rank, reason, restarts so far)`` after a failed worker was restarted."""
        self.processes: list[Any] = []
        self.restarts: list[int] = []
        """Restarts of each worker so far."""
        self._target: Callable[..., None] | None = None
        self._args: list[tuple[Any, ...]] = []
        self._errors: dict[int, str] = {}  # rank -> traceback its latest failure sent

    def __enter__(self) -> WorkerGroup:
        return self

    def start(self, target: Callable[..., None], args: list[tuple[Any, ...]]) -> None:
        """Start one daemon process per argument tuple."""
        self._target, self._args = target, list(args)
        for rank in range(len(self._args)):
            self.processes.append(self._spawn(rank))
            self.restarts.append(0)

    def _spawn(self, rank: int) -> Any:
        process = self.context.Process(
            target=self._target, args=self._args[rank], name=f"pathevo-worker-{rank}", daemon=True
        )
        process.start()
        return process

    def messages(self, poll: float = 0.2) -> Iterator[dict[str, Any]]:
        """Yield worker messages until every worker has exited; restart failed workers (up to
        ``max_restarts`` each) or raise :class:`WorkerError`. Workers are checked every
        ``poll`` seconds even while messages keep coming."""
        next_check = time.monotonic() + poll
        while True:
            try:
                message = self.queue.get(timeout=poll)
            except queue_module.Empty:
                message = None
            if message is None or time.monotonic() >= next_check:
                finished = self._check_workers()
                if message is None and finished:
                    return
                next_check = time.monotonic() + poll
            if message is None:
                continue
            if message["kind"] == "error":
                if self.max_restarts == 0:
                    raise WorkerError(f"worker {message['rank']} failed:\n{message['traceback']}")
                self._errors[message["rank"]] = message["traceback"]
                continue
            yield message

    def _check_workers(self) -> bool:
        """Restart (or raise for) every worker that died with an error; True once all have
        exited cleanly."""
        finished = True
        for rank, process in enumerate(self.processes):
            code = process.exitcode
            if code == 0:
                continue
            if code is None:
                finished = False
                continue
            error = self._errors.pop(rank, None)
            reason = error.strip().splitlines()[-1] if error else f"exit code {code}"
            if self.max_restarts == 0:
                raise WorkerError(f"worker {rank} died with exit code {code}")
            check_restart_budget(rank, reason, self.restarts[rank], self.max_restarts)
            if bool(self.stop):
                continue  # the run is winding down: nothing to restart for
            self.restarts[rank] += 1
            self.processes[rank] = self._spawn(rank)
            finished = False
            if self.on_restart is not None:
                self.on_restart(rank, error or reason, self.restarts[rank])
        return finished

    def sync(self) -> None:
        """Nothing to do: the runner's model, optimiser and population are the workers' own
        (shared memory). A group whose workers keep them elsewhere copies them back here."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.fill_(True)
        deadline = time.monotonic() + self.join_timeout
        # Drain the queue while waiting: a worker blocks on exit until its queued items are read.
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            with contextlib.suppress(queue_module.Empty):
                while True:
                    self.queue.get_nowait()
            for process in self.processes:
                process.join(timeout=0.05)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join()
        self.queue.close()
        self.queue.join_thread()
