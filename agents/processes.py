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

Each worker runs in a directory of its own, ``worker-<rank>/`` in the group's ``workdir`` (a
temporary directory by default): its stderr goes to ``stderr.log`` there, with a Python stack
dump if it crashes in native code, and native code it runs that writes into a working directory
— a game engine's crash log — is started there (:data:`WORKER_DIR_ENV`), so nothing reaches the
user's working directory and a crashing engine shows as one line from the runner, not as the
engine's dump. The workers' own working directory stays the user's: paths they were given
relative to it keep working. What is empty when the group exits is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import faulthandler
import os
import queue as queue_module
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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


WORKER_DIR_ENV = "PATHEVO_WORKER_DIR"
"""Set in each worker's environment to the worker's own directory: code that starts native
programs writing into their working directory (:mod:`pathevo.envs.labyrinth`'s game engine and its
crash log) starts them there instead of in the user's working directory."""

STDERR_LOG = "stderr.log"
"""A worker's stderr, in its directory."""

NATIVE_CRASH = "a crash in native code, such as a game engine?"
SIGNAL_CAUSES = {
    "SIGSEGV": NATIVE_CRASH,
    "SIGBUS": NATIVE_CRASH,
    "SIGILL": NATIVE_CRASH,
    "SIGFPE": NATIVE_CRASH,
    # abort(): a C++ exception nobody caught, a failed assertion; and pygame (which ViZDoom's
    # gymnasium env imports) turns a segfault into one where faulthandler is not on first.
    "SIGABRT": NATIVE_CRASH,
    "SIGKILL": "out of memory, or killed by hand?",
}
"""The likely cause of a worker's death by each signal, as the runner reports it."""


def exit_reason(code: int) -> str:
    """How a worker process that exited with ``code`` (its ``exitcode``: ``-N`` when signal N
    killed it) ended, in words: the signal by name, with its likely cause.

    Example:
        >>> exit_reason(-11)
        'died by SIGSEGV (a crash in native code, such as a game engine?)'
    """
    if code >= 0:
        return f"died with exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    cause = SIGNAL_CAUSES.get(name)
    return f"died by {name}" + (f" ({cause})" if cause else "")


def run_worker(directory: str, target: Callable[..., None], *args: Any) -> None:
    """A worker process's entry point: ``target(*args)`` with its stderr (file descriptor 2,
    which native code and child processes write to as well) appended to ``STDERR_LOG`` in
    ``directory``, a Python stack dump there if it crashes, and ``directory`` named in
    :data:`WORKER_DIR_ENV`. Its working directory is not changed."""
    os.environ[WORKER_DIR_ENV] = directory
    log = os.open(
        os.path.join(directory, STDERR_LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
    )
    sys.stderr.flush()
    os.dup2(log, 2)
    os.close(log)
    faulthandler.enable()
    target(*args)


def prune_empty(directory: Path) -> None:
    """Remove the empty files and folders in ``directory``, and ``directory`` if that empties it."""
    for root, _folders, files in os.walk(directory, topdown=False):
        for name in files:
            path = Path(root, name)
            with contextlib.suppress(OSError):
                if path.stat().st_size == 0:
                    path.unlink()
        with contextlib.suppress(OSError):
            Path(root).rmdir()  # fails unless empty


def _has_text(path: Path) -> bool:
    """Whether ``path`` is a file with something in it."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:  # gone meanwhile
        return False


def _tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of the text file at ``path``; empty if it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


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
        workdir: str | Path | None = None,
        restart_args: Callable[[int], tuple[Any, ...]] | None = None,
    ) -> None:
        self.context = mp.get_context("spawn")
        self.queue = self.context.Queue()
        self.stop = torch.zeros((), dtype=torch.bool).share_memory_()
        """Set by the runner to ask workers to finish their current update and exit."""
        self.join_timeout = join_timeout
        self.max_restarts = max_restarts
        """Restarts allowed per worker; 0: the first failure raises :class:`WorkerError`."""
        self.on_restart = on_restart
        """``on_restart(rank, reason, restarts so far)`` after a failed worker was restarted;
        ``reason``'s first line says what happened, the lines after it (if any) are the worker's
        traceback."""
        self.workdir = None if workdir is None else Path(workdir).resolve()
        """Holds each worker's directory (``worker-<rank>/``); None: a temporary directory,
        made when the workers start."""
        self._made_workdir = False  # removed on exit if it is then empty
        self.restart_args = restart_args
        """``restart_args(rank)``: the arguments a failed worker ``rank`` restarts with (a fresh
        channel to a learner, :mod:`pathevo.agents.learner`); None: the ones it started with."""
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
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pathevo-workers-"))
            self._made_workdir = True
        elif not self.workdir.exists():
            self.workdir.mkdir(parents=True)
            self._made_workdir = True
        for rank in range(len(self._args)):
            self.processes.append(self._spawn(rank))
            self.restarts.append(0)

    def worker_dir(self, rank: int) -> Path:
        """Worker ``rank``'s directory: its ``stderr.log`` and native programs' files."""
        if self.workdir is None:
            raise RuntimeError("the workers have not started")
        return self.workdir / f"worker-{rank}"

    def _spawn(self, rank: int) -> Any:
        directory = self.worker_dir(rank)
        directory.mkdir(exist_ok=True)
        process = self.context.Process(
            target=run_worker, args=(str(directory), self._target, *self._args[rank]),
            name=f"pathevo-worker-{rank}", daemon=True,
        )  # fmt: skip
        process.start()
        return process

    def _files_of(self, rank: int) -> str:
        """``" — see <its directory>"`` if worker ``rank`` left anything there, else nothing."""
        directory = self.worker_dir(rank)
        return f" — see {directory}" if any(map(_has_text, directory.rglob("*"))) else ""

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

    def check(self) -> bool:
        """For groups whose workers send nothing but errors on the queue (a learner's actors):
        take the errors queued so far, then restart (or raise for) every failed worker as
        :meth:`messages` does; True once all have exited cleanly."""
        with contextlib.suppress(queue_module.Empty):
            while True:
                message = self.queue.get_nowait()
                if message["kind"] != "error":
                    continue
                if self.max_restarts == 0:
                    raise WorkerError(f"worker {message['rank']} failed:\n{message['traceback']}")
                self._errors[message["rank"]] = message["traceback"]
        return self._check_workers()

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
            summary = error.strip().splitlines()[-1] if error else exit_reason(code)
            summary += self._files_of(rank)
            if self.max_restarts == 0:
                details = error or _tail(self.worker_dir(rank) / STDERR_LOG)
                raise WorkerError(f"worker {rank} failed: {summary}\n{details}".rstrip())
            check_restart_budget(rank, summary, self.restarts[rank], self.max_restarts)
            if bool(self.stop):
                continue  # the run is winding down: nothing to restart for
            self.restarts[rank] += 1
            if self.restart_args is not None:
                self._args[rank] = self.restart_args(rank)
            self.processes[rank] = self._spawn(rank)
            finished = False
            if self.on_restart is not None:
                reason = summary + (f"\n{error.rstrip()}" if error else "")
                self.on_restart(rank, reason, self.restarts[rank])
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
        self._tidy()

    def _tidy(self) -> None:
        """Remove what is empty in the workers' directories, and the group's directory if it
        made it and nothing is left there."""
        if self.workdir is None:
            return
        for rank in range(len(self.processes)):
            prune_empty(self.worker_dir(rank))
        if self._made_workdir:
            with contextlib.suppress(OSError):
                self.workdir.rmdir()
