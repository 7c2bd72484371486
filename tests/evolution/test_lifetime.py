"""A worker dies with its parent, whether the kernel signals it or the watchdog thread sees it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pathevo.evolution.lifetime import die_with_parent

PARENT = textwrap.dedent(
    """
    import multiprocessing, sys, time
    from pathevo.evolution import lifetime

    def worker(kernel: bool) -> None:
        if not kernel:  # the portable path: a thread polling the parent's pid
            lifetime._kernel_signal_on_parent_death = lambda signum: False
        assert lifetime.die_with_parent(poll_seconds=0.1)
        print("armed", flush=True)
        while True:
            time.sleep(1)

    if __name__ == "__main__":
        child = multiprocessing.get_context("spawn").Process(
            target=worker, args=(sys.argv[1] == "kernel",), daemon=True
        )
        child.start()
        print(child.pid, flush=True)
        while True:
            time.sleep(1)
    """
)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("how", ["kernel", "watchdog"])
def test_worker_dies_within_seconds_of_a_killed_parent(how: str, tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), how], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "armed"  # the child inherits stdout
        assert alive(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_outside_multiprocessing_there_is_nothing_to_watch() -> None:
    assert die_with_parent() is False
