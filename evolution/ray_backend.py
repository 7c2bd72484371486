"""The Ray map backend: fitness evaluations as Ray tasks, on a local instance or a cluster.

Moritz et al. 2018, "Ray: A Distributed Framework for Emerging AI Applications",
arXiv:1712.05889. ``map(fn, items)`` puts ``fn`` (the evaluation callable and everything it
holds) into Ray's object store once and runs one task per item, one CPU and one torch thread
each, anywhere in the cluster; results come back in the items' order. This fits
*evaluation-only* fitness (a HyperNEAT genome's episodes): a task's side effects stay on the
machine that ran it, so the evaluation must return everything that matters, and its random
draws must be seeded from the item (a genome's key), never from where it happened to run.

``address`` None starts a local instance with ``workers`` CPUs (and shuts it down afterwards);
``"auto"`` joins the cluster started on this machine with ``ray start``; ``host:port`` (a head's
GCS address) or ``ray://host:port`` (Ray Client) join a remote one. :func:`check_ray` says,
before any work, what is wrong: Ray not installed, or an address that does not answer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

RAY_INSTALL = 'pip install -e ".[ray]"'
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a Ray address to accept a connection."""


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        message = f"the ray backend needs Ray, which is not installed: {RAY_INSTALL}"
        raise ValueError(message) from None
    return ray


def check_ray(address: str | None) -> None:
    """Ray is importable and ``address`` (when it names a host) accepts connections."""
    import_ray()
    if address is None or address == "auto":
        return
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"no Ray cluster answers at {address}: {reason}") from None


def split_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``ray://host:port``."""
    hostport = address.removeprefix("ray://")
    host, colon, port = hostport.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"a Ray address reads host:port or ray://host:port, got {address!r}")
    return host, int(port)


def _evaluate(fn: Callable[[Any], Any], item: Any) -> Any:
    torch.set_num_threads(1)  # one CPU per task, as the process backend's workers
    return fn(item)


@contextmanager
def ray_map(workers: int, address: str | None = None) -> Iterator[Callable[..., list[Any]]]:
    """Yield ``map(fn, items) -> list`` running on Ray; a Ray this call started is shut down."""
    check_ray(address)
    ray = import_ray()
    owned = not ray.is_initialized()
    if owned:
        options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
        if address is None:
            ray.init(num_cpus=workers, **options)
        else:
            ray.init(address=address, **options)
    evaluate = ray.remote(num_cpus=1)(_evaluate)

    def map_fn(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        fn_ref = ray.put(fn)
        return ray.get([evaluate.remote(fn_ref, item) for item in items])

    try:
        yield map_fn
    finally:
        if owned:
            ray.shutdown()
