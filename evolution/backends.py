"""Map backends: the single switch that decides where fitness evaluations run.

``serial`` evaluates in this process, in order (a fixed seed reproduces a run exactly).
``processes`` evaluates in a pool of local processes started with the *spawn* context; the
evaluation callable and everything it holds (the library in shared memory) are pickled to the
workers, so tensors must be put in shared memory first (``module.share_memory()``). Evaluation
code never knows which backend runs it. Pool workers die with the process that opened the pool,
even when it is killed (:mod:`pathevo.evolution.lifetime`). ``ray`` runs each evaluation as a Ray
task on a local instance or a cluster (:mod:`pathevo.evolution.ray_backend`): for evaluation-only
fitness whose seeds come from the genome, since a task's side effects stay where it ran.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.multiprocessing as mp

from pathevo.evolution.lifetime import die_with_parent
from pathevo.evolution.ray_backend import check_ray, ray_map
from pathevo.evolution.toolbox import MapFn

BACKENDS = ("serial", "processes", "ray")


def _init_worker(threads: int, seed: int) -> None:
    die_with_parent()
    torch.set_num_threads(threads)
    # Pool workers are numbered 1..W; each draws its own minibatches (seed + rank).
    identity = mp.current_process()._identity
    rank = identity[0] if identity else 0
    torch.manual_seed(seed + rank)
    random.seed(seed + rank)


def check_backend(
    kind: str, ray_address: str | None = None, choices: tuple[str, ...] = BACKENDS
) -> None:
    """Before any work: ``kind`` is one of ``choices`` (the map backends by default), and its
    prerequisites hold (Ray installed, the address answering); a one-line ValueError
    otherwise."""
    if kind not in choices:
        close = difflib.get_close_matches(kind.lower(), choices, n=2, cutoff=0.5)
        hint = f"did you mean: {', '.join(close)}?" if close else f"choose one of {choices}"
        what = "map backend" if choices == BACKENDS else "backend"
        raise ValueError(f"unknown {what} {kind!r}; {hint}")
    if kind == "ray":
        check_ray(ray_address)


@contextmanager
def map_backend(
    kind: str, workers: int = 2, seed: int = 0, ray_address: str | None = None
) -> Iterator[MapFn]:
    """Yield a ``map(fn, items)`` for ``kind``; the pool, if any, is closed on exit.

    Pool workers use one torch thread each and are seeded ``seed + rank``; Ray tasks use one
    thread each; an evaluation-only fitness seeds itself from its item, a training fitness
    (:class:`pathevo.evolution.ray_backend.TrainingFitness`) gets a seed per evaluation drawn from
    ``seed`` and sends its parameter changes back. ``ray_address``: see
    :func:`pathevo.evolution.ray_backend.ray_map` (None: a local instance of ``workers`` CPUs).
    """
    if kind == "serial":
        yield map
        return
    check_backend(kind)
    if workers <= 0:
        raise ValueError(f"workers must be positive, got {workers}")
    if kind == "ray":
        with ray_map(workers, ray_address, seed) as map_fn:
            yield map_fn
        return
    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(1, seed))
    try:
        yield pool.map
    finally:
        pool.terminate()
        pool.join()
