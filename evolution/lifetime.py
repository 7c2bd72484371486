"""Worker processes end with the process that started them, however that process ends.

A parent that is SIGKILLed (``kill -9``, the OOM killer) runs no clean-up: its daemonic
multiprocessing workers are re-parented to init and go on training, holding memory, shared
tensors and game engines, and multiprocessing's resource tracker waits for them (it exits once
the last process holding its pipe is gone). Every worker of pathevo — the A3C workers of
:mod:`pathevo.agents.processes` and the pool of :mod:`pathevo.evolution.backends` — calls
:func:`die_with_parent` first thing, so it dies within a second of its parent.

On Linux the kernel delivers the death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``): immediate,
even while the worker is busy in C code. The kernel sends it when the *thread* that started the
worker ends, so start workers from a thread that lives as long as they should (the runner's main
thread). Elsewhere (or under a fork server) a daemon thread polls the parent's liveness.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(poll_seconds: float = 0.5) -> bool:
    """Arrange for this process to be killed when its multiprocessing parent dies.

    Returns False in a process that multiprocessing did not start (nothing to watch). A parent
    that died before this call (during the worker's start-up) kills the worker at once.
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return False
    # The kernel's signal follows the process that forked this one: only a direct child (spawn)
    # can use it; under a fork server the watchdog follows the real parent.
    direct_child = os.getppid() == parent.pid
    if not (direct_child and _kernel_signal_on_parent_death(signal.SIGKILL)):
        watch = threading.Thread(
            target=_watch_parent, args=(parent, poll_seconds), name="pathevo-parent-watch"
        )
        watch.daemon = True
        watch.start()
    if not parent.is_alive():  # orphaned already: the signal will never come
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def _kernel_signal_on_parent_death(signum: int) -> bool:
    """Ask Linux to send ``signum`` when the parent dies; False where that is not available."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: multiprocessing.process.BaseProcess, poll_seconds: float) -> None:
    while parent.is_alive():  # the parent's end of a pipe: closed when it exits, however
        time.sleep(poll_seconds)
    os.kill(os.getpid(), signal.SIGKILL)
