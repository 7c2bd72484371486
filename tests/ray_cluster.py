"""A two-node Ray cluster on localhost for tests: ``ray start --head`` plus a second
``ray start --address …``, one CPU each, as on two machines (token authentication off: on a
real cluster every node needs the head's token)."""

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

needs_ray_cli = pytest.mark.skipif(shutil.which("ray") is None, reason="the ray command line")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def two_node_cluster() -> Iterator[str]:
    """Yield the head's address; both nodes are stopped afterwards. Start it once per test
    session (the ``two_node_ray`` fixture): a process that connected to one cluster fails to
    fetch objects from a second one started later at another port."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = ["ray", "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
    second = ["ray", "start", f"--address={address}", "--num-cpus=1"]
    try:
        subprocess.run(head, check=True, capture_output=True, timeout=180)
        subprocess.run(second, check=True, capture_output=True, timeout=180)
        yield address
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120)
