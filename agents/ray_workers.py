"""A3C and PathNet-A3C workers as Ray actors around a parameter-server actor.

Moritz et al. 2018 (Ray, arXiv:1712.05889); A3C: Mnih et al. 2016 (arXiv:1602.01783); PathNet's
asynchronous tournament: Fernando et al. 2017 (arXiv:1701.08734). Shared memory does not reach
another machine, so on Ray one :class:`ParameterServer` actor owns what local worker processes
share: the model (for PathNet the whole module library and every head), the optimiser and its
statistics, the step counters and the population of path genomes. Each worker is a
:class:`WorkerActor` running the very loop of a local worker (:func:`pathevo.agents.a3c.run_worker`)
through a :class:`RayHub`: before every update it pulls the current values of the parameters
it is about to use (a PathNet worker: its path's modules and its task's head), and it pushes
their gradients, which the server applies with the shared optimiser at the worker's learning
rate. The guard of frozen modules (:meth:`pathevo.modules.library.PathLibrary.guard`) sits on the
server's optimiser, so a frozen module stays bitwise fixed. The server runs one call at a time:
the updates of different workers are serialised instead of interleaved (Hogwild's races do
not happen), and a tournament reads and writes the population in one call. Worker messages
(episodes, update statistics, tournaments) travel with the next push and are drained by the
runner, which copies step counters and population along, and the whole state (model,
optimiser, population) when it checkpoints (:meth:`RayWorkerGroup.sync`).

A worker that raises or whose actor dies (SIGKILL, a lost node) is started again in a fresh
actor with its rank, so its population slot and genome, and a fresh environment, up to
``max_restarts`` times, as :class:`pathevo.agents.processes.WorkerGroup` does for processes.
Actors are owned by the runner's Ray driver (not detached): Ray ends them when the driver exits.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import torch
from torch import nn

from pathevo.agents.processes import WorkerError, check_restart_budget
from pathevo.agents.shared_optim import apply_gradients
from pathevo.evolution.async_tournament import SharedPopulation, async_tournament
from pathevo.evolution.ray_backend import ray_session
from pathevo.evolution.toolbox import make_toolbox


def synced_tensors(
    steps: torch.Tensor, population: SharedPopulation | None
) -> dict[str, torch.Tensor]:
    """What the server and the runner keep in step besides the parameters and optimiser, by
    name: the step counters [W] and a population's genomes [P, L*N], fitness [P] and adoptions
    [P] (none for agents without paths)."""
    tensors = {"steps": steps}
    if population is not None:
        tensors.update(
            {f.name: getattr(population, f.name) for f in dataclasses.fields(population)}
        )
    return tensors


def shared_of(spec: Any) -> tuple[Any, SharedPopulation | None, Any]:
    """A worker spec's shared state: its A3C part (``spec.a3c``: a PathNet spec wraps one, an
    A3C spec is its own), the population and its PathNet settings (None for A3C specs)."""
    return spec.a3c, spec.population, spec.pathnet


class ParameterServer:
    """The state every worker shares, owned by one actor: model, optimiser, counters, genomes.

    ``shared`` is ``(model, optimizer)`` in one object, so the optimiser's parameters arrive as
    the model's own; ``population`` and ``pathnet`` (an
    :class:`pathevo.agents.pathnet_a3c.PathNetA3CConfig`) only for PathNet. Worker ``rank``'s
    tournaments draw from ``random.Random(seeds[rank])``: its session seed, as a local worker's
    do.
    """

    def __init__(
        self,
        shared: tuple[nn.Module, torch.optim.Optimizer],
        steps: torch.Tensor,
        budget: int,
        population: SharedPopulation | None = None,
        pathnet: Any = None,
        seeds: list[int] | None = None,
    ) -> None:
        torch.set_num_threads(1)
        self.model, self.optimizer = shared
        self.parameters = dict(self.model.named_parameters())
        library = getattr(self.model, "library", None)
        if library is not None:
            library.guard(self.optimizer)  # frozen modules stay bitwise identical
        self.steps, self.budget = steps.clone(), budget
        self.population, self.pathnet = population, pathnet
        self.synced = synced_tensors(self.steps, population)
        self.seeds = seeds or list(range(steps.numel()))
        self.toolboxes: dict[int, Any] = {}
        self.stopped = False
        self.messages: list[dict[str, Any]] = []

    def finished(self) -> bool:
        return self.stopped or int(self.steps.sum()) >= self.budget

    def stop(self) -> None:
        self.stopped = True

    def pull(self, names: list[str]) -> list[torch.Tensor]:
        """The current values of the parameters ``names``."""
        return [self.parameters[name].detach() for name in names]

    def push(
        self,
        rank: int,
        names: list[str],
        grads: list[torch.Tensor | None] | None,
        num_steps: int,
        lr: float,
        messages: list[dict[str, Any]],
    ) -> tuple[int, bool]:
        """Apply worker ``rank``'s gradients (``None``: a skipped update) at its learning rate,
        count its steps, keep its messages; the global step and whether the run is over."""
        if grads is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            apply_gradients([self.parameters[name] for name in names], grads, self.optimizer)
        self.steps[rank] += num_steps
        self.messages.extend(messages)
        return int(self.steps.sum()), self.finished()

    def report(self, messages: list[dict[str, Any]]) -> int:
        self.messages.extend(messages)
        return int(self.steps.sum())

    def genome(self, rank: int) -> list[int]:
        return self._population().genomes[rank].tolist()

    def done(self, rank: int) -> int:
        return int(self.steps[rank])

    def tournament(self, rank: int, fitness: float) -> tuple[int | None, list[int]]:
        """Slot ``rank``'s asynchronous tournament: the rival it copied (if any), its genome."""
        population = self._population()
        if rank not in self.toolboxes:
            evo = self.pathnet.evo_config(len(population))
            sizes = self.model.library.modules_per_layer
            self.toolboxes[rank] = make_toolbox(
                evo, rng=random.Random(self.seeds[rank]), sizes=sizes
            )
        outcome = async_tournament(
            population, rank, fitness, self.toolboxes[rank], self.pathnet.rivals
        )
        return outcome.copied_from, population.genomes[rank].tolist()

    def drain(self) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
        """The messages since the last call, and the counters and population
        (:func:`synced_tensors`)."""
        messages, self.messages = self.messages, []
        return messages, self.synced

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint needs of the shared state: model, optimiser and
        :func:`synced_tensors` (``synced``)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "synced": self.synced}  # fmt: skip

    def _population(self) -> SharedPopulation:
        if self.population is None:
            raise ValueError("this run has no population of path genomes")
        return self.population


class RayHub:
    """A worker actor's :class:`pathevo.agents.a3c.Hub` (and PathNet's ``PathHub``): parameters by
    name, every call a round trip to the :class:`ParameterServer`; messages ride along with the
    next push."""

    def __init__(self, ray: Any, server: Any, rank: int, lr: float) -> None:
        self.ray, self.server, self.rank, self.lr = ray, server, rank, lr
        self.outbox: list[dict[str, Any]] = []
        self._step, self._finished = 0, ray.get(server.finished.remote())
        self._done = ray.get(server.done.remote(rank))  # this worker's steps at its start
        self._genome: list[int] | None = None
        self._names: dict[int, str] | None = None

    def keys(self, local: nn.Module, params: list[torch.Tensor]) -> list[str]:
        if self._names is None:
            self._names = {id(param): name for name, param in local.named_parameters()}
        return [self._names[id(param)] for param in params]

    @torch.no_grad()
    def pull(self, local: list[torch.Tensor], keys: list[str]) -> None:
        values = self.ray.get(self.server.pull.remote(keys))
        for mine, value in zip(local, values, strict=True):
            mine.copy_(value)

    def push(
        self, rank: int, keys: list[str], grads: list[torch.Tensor | None] | None, num_steps: int
    ) -> int:
        outbox, self.outbox = self.outbox, []
        call = self.server.push.remote(rank, keys, grads, num_steps, self.lr, outbox)
        self._step, self._finished = self.ray.get(call)
        return self._step

    def report(self, message: dict[str, Any]) -> None:
        self.outbox.append(message)

    def flush(self) -> None:
        """Send the messages still waiting for a push (the last ones of a worker's run)."""
        if self.outbox:
            outbox, self.outbox = self.outbox, []
            self._step = self.ray.get(self.server.report.remote(outbox))

    def step(self) -> int:
        return self._step

    def done(self, rank: int) -> int:
        return self._done

    def finished(self) -> bool:
        return self._finished

    def genome(self, rank: int) -> list[int]:
        if self._genome is None:
            self._genome = self.ray.get(self.server.genome.remote(rank))
        return self._genome

    def tournament(self, rank: int, fitness: float) -> int | None:
        copied_from, self._genome = self.ray.get(self.server.tournament.remote(rank, fitness))
        return copied_from


class WorkerActor:
    """One A3C / PathNet-A3C worker: ``target(rank, spec, hub)`` with a :class:`RayHub`."""

    def run(
        self, target: Callable[..., None], rank: int, spec: Any, server: Any, lr: float
    ) -> None:
        import ray

        torch.set_num_threads(1)
        hub = RayHub(ray, server, rank, lr)
        try:
            target(rank, spec, hub)
        finally:
            hub.flush()


class RayWorkerGroup:
    """:class:`pathevo.agents.processes.WorkerGroup`'s interface, the workers being Ray actors.

    ``start(target, args)`` takes the same ``(rank, spec)`` tuples: the first spec's shared
    model, optimiser, step counters and population become the :class:`ParameterServer`'s, and
    :meth:`sync` (before every checkpoint, and on exit) copies the server's state back into
    them, so the runner saves and reports the run as it does with processes. ``address``: as
    :func:`pathevo.evolution.ray_backend.ray_session` (None: a local instance of ``workers`` CPUs).
    """

    def __init__(
        self,
        workers: int,
        address: str | None = None,
        join_timeout: float = 30.0,
        max_restarts: int = 0,
        on_restart: Callable[[int, str, int], None] | None = None,
    ) -> None:
        self._session = ray_session(workers, address)
        self.ray = self._session.__enter__()
        self.queue = None  # workers report through the server
        self.stop = torch.zeros((), dtype=torch.bool)
        self.join_timeout, self.max_restarts, self.on_restart = (
            join_timeout,
            max_restarts,
            on_restart,
        )
        self.restarts: list[int] = []
        self.actors: list[Any] = []
        self.runs: dict[Any, int] = {}  # a running actor's run() -> its rank
        self.server: Any = None
        self._base: Any = None  # the runner's A3C spec: its model, optimiser, counters
        self._synced: dict[str, torch.Tensor] = {}
        self._target: Callable[..., None] | None = None
        self._args: list[tuple[Any, ...]] = []
        self._stop_sent = False

    def __enter__(self) -> RayWorkerGroup:
        return self

    def start(self, target: Callable[..., None], args: list[tuple[Any, ...]]) -> None:
        ray = self.ray
        self._target, self._args = target, list(args)
        base, population, pathnet = shared_of(args[0][1])
        self._base, self._synced = base, synced_tensors(base.steps, population)
        server = ray.remote(num_cpus=0)(ParameterServer)
        seeds = [base.session_seed(rank, int(base.steps[rank])) for rank in range(len(args))]
        self.server = server.remote(
            (base.model, base.optimizer), base.steps, base.budget, population, pathnet, seeds
        )
        for rank in range(len(self._args)):
            self.actors.append(None)
            self.restarts.append(0)
            self._spawn(rank)

    def _spawn(self, rank: int) -> None:
        actor = self.ray.remote(num_cpus=1)(WorkerActor).remote()
        self.actors[rank] = actor
        rank_arg, spec = self._args[rank]
        lr = float(self._base.lrs[rank])
        self.runs[actor.run.remote(self._target, rank_arg, spec, self.server, lr)] = rank

    def messages(self, poll: float = 0.2) -> Iterator[dict[str, Any]]:
        """Yield worker messages until every worker has finished; restart failed workers (up
        to ``max_restarts`` each) or raise :class:`WorkerError`."""
        while True:
            if bool(self.stop) and not self._stop_sent:
                self.ray.get(self.server.stop.remote())
                self._stop_sent = True
            ready, _ = self.ray.wait(list(self.runs), num_returns=len(self.runs), timeout=poll)
            for run in ready:
                self._finish(run)
            yield from self._drain()
            if not self.runs:
                yield from self._drain()
                return

    def _finish(self, run: Any) -> None:
        rank = self.runs.pop(run)
        try:
            self.ray.get(run)
            return
        except self.ray.exceptions.RayActorError:
            reason = "its actor died"
        except self.ray.exceptions.RayTaskError as error:
            reason = str(error).strip().splitlines()[-1]
        self.ray.kill(self.actors[rank])
        if self.max_restarts == 0:
            raise WorkerError(f"worker {rank} failed: {reason}")
        check_restart_budget(rank, reason, self.restarts[rank], self.max_restarts)
        if bool(self.stop):
            return  # the run is winding down: nothing to restart for
        self.restarts[rank] += 1
        self._spawn(rank)
        if self.on_restart is not None:
            self.on_restart(rank, reason, self.restarts[rank])

    def _drain(self) -> Iterator[dict[str, Any]]:
        messages, synced = self.ray.get(self.server.drain.remote())
        self._copy_synced(synced)
        yield from messages

    def sync(self) -> None:
        """Copy the server's model, optimiser, counters and population into the runner's."""
        if self.server is None:
            return
        state = self.ray.get(self.server.state.remote())
        self._base.model.load_state_dict(state["model"])
        self._base.optimizer.load_state_dict(state["optimizer"])
        share = getattr(self._base.optimizer, "share_memory", None)
        if share is not None:
            share()  # the runner's optimiser stays usable by local worker processes
        self._copy_synced(state["synced"])

    def _copy_synced(self, synced: dict[str, torch.Tensor]) -> None:
        """The server's counters and population into the runner's tensors."""
        for name, value in synced.items():
            self._synced[name].copy_(value)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.server is not None:
                self.stop.fill_(True)
                self.ray.get(self.server.stop.remote())
                deadline = time.monotonic() + self.join_timeout
                while self.runs and time.monotonic() < deadline:
                    ready, _ = self.ray.wait(list(self.runs), num_returns=1, timeout=0.5)
                    for run in ready:
                        self.runs.pop(run)
                self.sync()
        finally:
            for actor in self.actors:
                if actor is not None:
                    self.ray.kill(actor)
            if self.server is not None:
                self.ray.kill(self.server)
            self._session.__exit__(exc_type, exc, tb)
