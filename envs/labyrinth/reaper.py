"""Leave no ViZDoom engine or shared-memory segment behind when its Python process dies.

ViZDoom (Kempka et al. 2016, arXiv:1605.02097) runs the game in a child process (``vizdoom``)
that talks to the library through POSIX shared memory and two message queues, all in
``/dev/shm`` and named after a per-game instance id. ``DoomGame.close()`` ends the engine and
unlinks them, but when the owner dies without closing (SIGKILL, ``os._exit`` at the end of a
multiprocessing worker, a segfault), the engine keeps running and the segments stay.

:func:`ensure_reaper` starts, once per Python process, a small watcher (this file run as a
script) that blocks on a pipe from its owner. The pipe reaches end-of-file only when the owner
has exited, however it exited; the watcher then kills every engine whose environment carries the
owner's token (set in ``os.environ`` before any engine starts, and inherited by each engine) and
unlinks those engines' segments. It runs in its own session so that signals aimed at the owner's
process group (Ctrl-C, a job killed as a group) do not stop it before it has cleaned up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

OWNER_ENV = "PATHEVO_VIZDOOM_OWNER"
SHM_DIR = Path("/dev/shm")
SHM_PREFIXES = ("ViZDoomSM", "ViZDoomMQCtr", "ViZDoomMQDoom")

_reaper_owner = 0  # pid of the process whose reaper is running
_reaper_pipe = -1  # write end, held open (never written) for the owner's lifetime
_lock = threading.Lock()


def ensure_reaper() -> None:
    """Start this process's engine reaper unless it has one (call before ``DoomGame.init``)."""
    global _reaper_owner, _reaper_pipe
    if sys.platform != "linux":  # the reaper reads Linux's /proc
        return
    with _lock:
        if _reaper_owner == os.getpid():
            return
        token = f"{os.getpid()}-{secrets.token_hex(8)}"
        read_end, write_end = os.pipe()  # both close-on-exec: engines never hold the write end
        # posix_spawn, not subprocess: no Popen object to warn that its child outlived it.
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-I", "-S", __file__, token],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)],
            setsid=True,
        )
        os.close(read_end)
        os.environ[OWNER_ENV] = token
        _reaper_owner, _reaper_pipe = os.getpid(), write_end


def _forget_parents_reaper() -> None:
    """In a forked child: close the inherited write end, so the parent's reaper still fires."""
    global _reaper_owner, _reaper_pipe
    if _reaper_pipe >= 0:
        os.close(_reaper_pipe)
    _reaper_owner, _reaper_pipe = 0, -1


os.register_at_fork(after_in_child=_forget_parents_reaper)


def engines_of(token: str) -> dict[int, str]:
    """Map pid → instance id of the running engines started under ``token``."""
    marker = f"{OWNER_ENV}={token}".encode()
    engines = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if b"+viz_instance_id" in args[:-1]:
            engines[int(proc.name)] = args[args.index(b"+viz_instance_id") + 1].decode()
    return engines


def reap(token: str) -> None:
    """Kill the engines started under ``token`` and unlink their shared-memory segments."""
    engines = engines_of(token)
    for pid in engines:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for instance_id in engines.values():
        for prefix in SHM_PREFIXES:
            (SHM_DIR / f"{prefix}{instance_id}").unlink(missing_ok=True)


def _watch(token: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.buffer.read()  # nothing is ever written: this returns when the owner has exited
    reap(token)


if __name__ == "__main__":
    _watch(sys.argv[1])
