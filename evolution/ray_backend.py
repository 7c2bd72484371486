"""The Ray map backend: fitness evaluations as Ray tasks, on a local instance or a cluster.

Moritz et al. 2018, "Ray: A Distributed Framework for Emerging AI Applications",
arXiv:1712.05889. ``map(fn, items)`` puts ``fn`` (the evaluation callable and everything it
holds) into Ray's object store once and runs one task per item, one CPU and one torch thread
each, anywhere in the cluster; results come back in the items' order. A task's side effects
stay on the machine that ran it, so an evaluation must return everything that matters, and its
random draws must be seeded from the item or the driver, never from where it happened to run.

* *Evaluation-only* fitness (a HyperNEAT genome's episodes) returns its fitness, seeded from
  the genome's key.
* *Training* fitness (the supervised binary tournament: an evaluation trains the genome's path)
  is a :class:`TrainingFitness`. Each task trains its own copy of the parameters from the
  values the driver put, with a seed the driver drew for that evaluation, and sends back, with
  the fitness, the **change** of every parameter it trained (its path's unfrozen modules and
  the head): one tensor per trained parameter, the size of one gradient. Not gradients: an
  evaluation takes T optimiser steps, each from the parameters the previous one left, so only
  the worker can replay them. Not the trained values: the two contenders of a tournament
  train from the same start and may share modules and the head; the driver adds both changes
  (``param += delta``), as the process backend's Hogwild workers add their updates to shared
  memory, where overwriting with values would drop the first contender's training.

``address`` None starts a local instance with ``workers`` CPUs (and shuts it down afterwards);
``"auto"`` joins the cluster started on this machine with ``ray start``; ``host:port`` (a head's
GCS address) or ``ray://host:port`` (Ray Client) join a remote one. :func:`check_ray` says,
before any work, what is wrong: Ray not installed, or an address that does not answer.
"""

from __future__ import annotations

import functools
import random
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

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


@runtime_checkable
class TrainingFitness(Protocol):
    """A fitness function whose evaluation trains parameters (``fn(item) -> fitness``)."""

    def __call__(self, item: Any) -> Any: ...

    def trained_parameters(self, item: Any) -> dict[str, nn.Parameter]:
        """The parameters an evaluation of ``item`` trains, by a name that is the same in every
        copy of ``self`` (``state_dict``-style names)."""
        ...


Deltas = dict[str, torch.Tensor]


def train_and_diff(fn: TrainingFitness, item: Any, seed: int) -> tuple[Any, Deltas]:
    """Evaluate ``item`` with the torch RNG seeded ``seed``; its fitness and what it changed
    (trained value minus starting value of every parameter it trains, zeros left out)."""
    trained = fn.trained_parameters(item)
    before = {name: param.detach().clone() for name, param in trained.items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fitness = fn(item)
    deltas = {name: trained[name].detach() - start for name, start in before.items()}
    return fitness, {name: delta for name, delta in deltas.items() if bool(delta.any())}


@torch.no_grad()
def apply_deltas(fn: TrainingFitness, item: Any, deltas: Deltas) -> None:
    """Add an evaluation's parameter changes to the driver's parameters (``fn``'s own)."""
    trained = fn.trained_parameters(item)
    for name, delta in deltas.items():
        trained[name].add_(delta.to(trained[name].device))


def _evaluate(fn: Callable[[Any], Any], item: Any) -> Any:
    torch.set_num_threads(1)  # one CPU per task, as the process backend's workers
    return fn(item)


def _train(fn: TrainingFitness, item: Any, seed: int) -> tuple[Any, Deltas]:
    torch.set_num_threads(1)
    return train_and_diff(fn, item, seed)


@contextmanager
def ray_map(
    workers: int, address: str | None = None, seed: int = 0
) -> Iterator[Callable[..., list[Any]]]:
    """Yield ``map(fn, items) -> list`` running on Ray; a Ray this call started is shut down.

    A :class:`TrainingFitness` ``fn`` trains remotely and its changes are applied here, in the
    items' order, before the fitnesses are returned; each evaluation's seed is drawn from
    ``random.Random(seed)`` here (a fixed seed reproduces the sequence of evaluations)."""
    with ray_session(workers, address) as ray:
        yield _ray_map_fn(ray, seed)


@contextmanager
def ray_session(workers: int, address: str | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module, connected: to the Ray already initialised in this process, or
    to a local instance of ``workers`` CPUs (``address`` None) or ``address``, which this call
    then shuts down on exit."""
    check_ray(address)
    ray = import_ray()
    owned = not ray.is_initialized()
    if owned:
        options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
        if address is None:  # a new instance, even where a `ray start` cluster runs
            ray.init(address="local", num_cpus=workers, **options)
        else:
            ray.init(address=address, **options)
    try:
        yield ray
    finally:
        if owned:
            ray.shutdown()


def _ray_map_fn(ray: Any, seed: int) -> Callable[..., list[Any]]:
    evaluate = ray.remote(num_cpus=1)(_evaluate)
    train = ray.remote(num_cpus=1)(_train)
    seeds = random.Random(seed)

    def map_fn(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        if isinstance(fn, functools.partial) and not fn.args and not fn.keywords:
            fn = fn.func  # DEAP's toolbox.register wraps what it registers in a partial
        fn_ref = ray.put(fn)  # the parameters as they are now, once for all items
        if not isinstance(fn, TrainingFitness):
            return ray.get([evaluate.remote(fn_ref, item) for item in items])
        items = list(items)
        draws = [seeds.getrandbits(63) for _ in items]
        results = ray.get([train.remote(fn_ref, i, s) for i, s in zip(items, draws, strict=True)])
        for item, (_, deltas) in zip(items, results, strict=True):
            apply_deltas(fn, item, deltas)
        return [fitness for fitness, _ in results]

    return map_fn
