"""The Ray map backend on a real local Ray instance (and, slow, a two-node localhost cluster)."""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from evolution import ray_backend
from evolution.backends import map_backend
from runners import hyperneat as runner

if os.environ.get("CI") == "true":
    import ray  # CI installs the ray extra: its Ray tests must run, never skip
else:
    ray = pytest.importorskip("ray")


def square(value: int) -> int:
    return value * value


def node_of(_: int) -> str:
    time.sleep(0.3)  # long enough that one node's CPU cannot take every task
    return ray.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance of 2 CPUs for the module (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_maps_in_order_and_leaves_a_ray_it_did_not_start_running(local_ray):
    with map_backend("ray", workers=2) as map_fn:
        assert map_fn(square, range(7)) == [0, 1, 4, 9, 16, 25, 36]
    assert ray.is_initialized()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_address_that_does_not_answer_is_a_one_line_error_before_any_work(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ValueError, match=f"no Ray cluster answers at {address}") as error:
        runner.HyperNEATRunConfig(backend="ray", ray_address=address, run_dir=str(tmp_path / "r"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="host:port"):
        ray_backend.check_ray("nowhere")


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ValueError, match=r'pip install -e "\.\[ray\]"'):
        ray_backend.check_ray(None)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ray") is None, reason="the ray command line")
def test_a_two_node_localhost_cluster_runs_tasks_on_both_nodes(monkeypatch):
    """``ray start --head`` plus a second ``ray start --address …`` with its own CPU, as on
    two machines; the backend joins by address and tasks land on both nodes. (Token
    authentication is off here: on a real cluster every node needs the head's token.)"""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = ["ray", "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
    second = ["ray", "start", f"--address={address}", "--num-cpus=1"]
    try:
        subprocess.run(head, check=True, capture_output=True, timeout=180)
        subprocess.run(second, check=True, capture_output=True, timeout=180)
        with map_backend("ray", workers=2, ray_address=address) as map_fn:
            assert map_fn(square, range(5)) == [0, 1, 4, 9, 16]
            nodes = set(map_fn(node_of, range(12)))
        assert len(nodes) == 2, nodes
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120)
