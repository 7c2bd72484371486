"""The learner mode of the A3C family: CPU actors only step environments; one learner acts and
learns for all of them.

Babaeizadeh et al. 2017, "Reinforcement Learning through Asynchronous Advantage Actor-Critic on
a GPU", arXiv:1611.06256 (GA3C); A3C: Mnih et al. 2016, arXiv:1602.01783; PathNet-A3C: Fernando
et al. 2017, arXiv:1701.08734.

Each actor process steps its batch of environments (:func:`pathevo.agents.env_batch.make_env_batch`)
and nothing else: it writes the observations into a shared-memory buffer, sends the step's
rewards, episode ends and finished episodes over its pipe, and waits for the next actions. The
learner runs in the runner's process, on ``A3CConfig.device``: it owns the network, the
optimiser state and (path agents) the population, so checkpoints, reporters and summaries see
its state as they see Hogwild's. Every iteration it takes the actors whose observations are in
(GA3C's prediction queue, drained at once), runs **one** forward pass over all of them — for
path agents one :meth:`~pathevo.agents.pathnet_a3c.PathNetA3C.forward_paths`, i.e. one
``forward_population`` over the actors' current paths, each actor's environments its own slice
— samples the actions and sends them back, so the actors step while it learns. It keeps each
actor's n-step rollout itself (the observations are already on the device); the rollouts that
complete in an iteration (GA3C's training queue) make one update: one forward pass with autograd
over all of them (their paths, side by side), the A3C loss
(:func:`pathevo.agents.a3c.a3c_gradients`) over all their steps, one clipped gradient, one
optimiser step. Rollouts of actors with
different learning rates (PathNet's sampled ones) are updated separately, each at its own rate.

What differs from Hogwild: updates are serialised (no races, like the Ray parameter server);
the actions of a rollout may come from parameters one update older than the ones its loss is
computed with (GA3C's policy lag), and its bootstrap value V(s_T) is computed in the update's
pass rather than when acting; the rollouts completed together make one update of their mean
loss, not one update each (their count of optimiser steps is divided by the batch). The
asynchronous tournament, its fitness windows (:class:`pathevo.agents.pathnet_a3c.FitnessWindow`)
and seeds, the frozen-module guard, the NaN guard and the worker messages are Hogwild's.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import multiprocessing.connection
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from pathevo.agents.a3c import (
    Forward,
    Rollout,
    WorkerSpec,
    a3c_gradients,
    a3c_worker,
    learner_device,
)
from pathevo.agents.env_batch import make_env_batch
from pathevo.agents.pathnet_a3c import FitnessWindow, PathNetA3C, pathnet_worker
from pathevo.agents.processes import WorkerGroup, worker_process
from pathevo.agents.shared_optim import apply_gradients
from pathevo.evolution.async_tournament import SharedPopulation, async_tournament
from pathevo.evolution.operators import genome_to_path
from pathevo.evolution.toolbox import make_toolbox
from pathevo.modules.moe import take_routing
from pathevo.modules.pruning import keep_pruned_zero
from pathevo.modules.recurrent import CoreState

LEARNER_WORKERS: set[Callable[..., Any]] = {a3c_worker, pathnet_worker}
"""The worker functions whose updates the learner makes (plain A3C and PathNet-A3C, whatever
their network or head); a worker that does more in its process needs Hogwild mode unless its
wrapper is in :data:`LEARNER_WRAPPERS`."""

LEARNER_WRAPPERS: set[Callable[..., Any]] = set()
"""Worker wrappers, passed as ``functools.partial(wrapper, worker=W)``, whose work the learner
does itself (the lottery's ``keep_zero_worker``: the learner always keeps pruned library weights
at 0, :func:`pathevo.modules.pruning.keep_pruned_zero`); registered by their modules."""


def check_learner_target(target: Callable[..., Any]) -> None:
    """A one-line ValueError unless the learner mode can stand in for worker ``target``."""
    if isinstance(target, functools.partial) and target.func in LEARNER_WRAPPERS:
        target = target.keywords.get("worker", target)
    if target not in LEARNER_WORKERS:
        name = getattr(getattr(target, "func", target), "__name__", repr(target))
        raise ValueError(f"the learner mode does not run {name} workers; use --a3c.mode hogwild")


# --- actors ----------------------------------------------------------------------------------


Hello = torch.Tensor
"""An actor's first message: its shared observation buffer [E, ...] (every env starts an
episode)."""
StepMessage = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, list]
"""``(rewards [E], dones [E], truncated [E], final_obs [E, ...] or None, finished episodes)``
of one step; the new observations are in the buffer."""


def run_actor(rank: int, env_id: str, seeds: list[int], conn: Any, queue: Any) -> None:
    """An actor process: step ``env_id`` environments (``seeds``) with the actions the learner
    sends over ``conn`` until it sends ``None`` (or goes away)."""
    with worker_process(rank, queue):
        envs = make_env_batch(env_id, seeds)
        try:
            buffer = envs.obs.clone().share_memory_()  # [E, ...] read by the learner
            conn.send(buffer)
            while True:
                try:
                    actions = conn.recv()
                except EOFError:  # the learner has gone: the run is over
                    return
                if actions is None:
                    return
                step = envs.step(actions)
                buffer.copy_(envs.obs)
                final = None if step.final_obs is None else step.final_obs.numpy()
                conn.send((step.rewards.numpy(), step.dones.numpy(), step.truncated.numpy(),
                           final, step.finished))  # fmt: skip
        finally:
            envs.close()


# --- how an agent's actors are batched --------------------------------------------------------


class PlainBatching:
    """One network for every actor (``a3c``, ``moe``, ``a3c-pruned``): actors side by side in
    the batch of an ordinary forward pass."""

    def forward(self, model: nn.Module, paths: list[torch.Tensor | None]) -> Forward:
        del paths
        return model

    def parameters(self, model: nn.Module, paths: list[torch.Tensor | None]) -> list[nn.Parameter]:
        del paths
        return list(model.parameters())

    def initial_state(self, model: nn.Module, envs: int) -> CoreState | None:
        return model.initial_state(envs)


@dataclass
class PathBatching:
    """Path agents (``pathnet``, ``pathnet-moe``, ``pathnet-hyper``): actor p's slice of the
    batch runs along its own path (:meth:`PathNetA3C.forward_paths`) through ``task``'s head,
    and an update trains the union of the paths' modules and the head."""

    task: str

    def forward(self, model: PathNetA3C, paths: list[torch.Tensor | None]) -> Forward:
        stacked = torch.stack(paths)  # [P, L, N] on the model's device
        return functools.partial(model.forward_paths, paths=stacked, task=self.task)

    def parameters(self, model: PathNetA3C, paths: list[torch.Tensor | None]) -> list[nn.Parameter]:
        distinct = {tuple(path.flatten().tolist()): path for path in paths}
        found = {
            id(param): param
            for path in distinct.values()
            for param in model.path_parameters(path, self.task)
        }
        return list(found.values())

    def initial_state(self, model: PathNetA3C, envs: int) -> CoreState | None:
        return model.initial_state(self.task, envs)


# --- the learner -----------------------------------------------------------------------------


@dataclass
class Trajectory:
    """The rollout an actor is playing, as the learner records it (on the learner's device)."""

    path: torch.Tensor | None  # [L, N] the path it acts with, or None
    initial_state: CoreState | None  # core state before obs[0]
    obs: list[torch.Tensor] = field(default_factory=list)  # T+1 of [E, ...]: the last bootstraps
    starts: list[torch.Tensor] = field(default_factory=list)  # T+1 of [E] bool
    actions: list[torch.Tensor] = field(default_factory=list)  # T of [E] long
    rewards: list[torch.Tensor] = field(default_factory=list)  # T of [E] float
    dones: list[torch.Tensor] = field(default_factory=list)  # T of [E] bool
    truncation_values: list[torch.Tensor] = field(default_factory=list)  # T of [E]
    episodes: list[tuple[int, float, int]] = field(default_factory=list)


@dataclass
class ActorSlot:
    """What the learner keeps of actor ``rank``: its pipe, observation buffer, core state,
    path, rollout, fitness window, tournament toolbox and update statistics."""

    rank: int
    conn: Any
    state: CoreState | None
    trajectory: Trajectory
    window: FitnessWindow | None = None
    toolbox: Any = None
    obs: torch.Tensor | None = None  # [E, ...] the actor's shared buffer, once it said hello
    starts: torch.Tensor | None = None  # [E] bool: obs begins an episode
    totals: dict[str, float] = field(default_factory=dict)
    updates: int = 0
    applied: int = 0
    skipped: int = 0


class Learner:
    """The network, optimiser and population of a phase on ``device``, acting for and learning
    from every actor (GA3C's predictor and trainer in one loop).

    On the CPU it uses the phase's own network and optimiser (nothing to copy back); elsewhere a
    copy on the device, with an optimiser of the same kind and state, copied back by
    :meth:`sync` (checkpoints then hold CPU tensors, as Hogwild's do).
    """

    def __init__(self, spec: Any, device: torch.device) -> None:
        base: WorkerSpec = spec.a3c
        self.base, self.cfg, self.device = base, base.cfg, device
        self.population: SharedPopulation | None = spec.population
        self.pathnet, self.evolve = spec.pathnet, getattr(spec, "evolve", True)
        self.batching = PlainBatching() if self.population is None else PathBatching(spec.task)
        if device.type == "cpu":
            self.model, self.optimizer = base.model, base.optimizer
        else:
            self.model, self.optimizer = to_device(base.model, base.optimizer, device)
        library = getattr(self.model, "library", None)
        self._guard = None if library is None else library.guard(self.optimizer)
        self._pruned = keep_pruned_zero(self.model, self.optimizer)  # no masks: no hooks' work
        self.aux_loss = getattr(self.model, "take_aux_loss", None)
        self.slots: dict[int, ActorSlot] = {}
        self.generator = torch.Generator(device).manual_seed(
            base.session_seed(0, int(base.steps.sum()))
        )

    # --- actors joining ---

    def connect(self, rank: int, conn: Any) -> None:
        """A fresh slot for actor ``rank`` (starting or restarted) talking over ``conn``: its
        genome as the population has it now, a fresh core state and fitness window, and
        tournaments drawn from its session seed (as a Hogwild worker's)."""
        old = self.slots.get(rank)
        if old is not None:
            old.conn.close()
        envs = self.cfg.envs_per_worker
        slot = ActorSlot(rank, conn, self._initial_state(), Trajectory(None, None))
        if self.population is not None:
            pathnet = self.pathnet
            genome = self.population.genomes[rank].tolist()
            slot.trajectory.path = self._path(genome)
            slot.window = FitnessWindow(envs, pathnet.episodes_per_evaluation)
            seed = self.base.session_seed(rank, int(self.base.steps[rank]))
            evo = pathnet.evo_config(len(self.population))
            sizes = self.model.library.modules_per_layer
            slot.toolbox = make_toolbox(evo, rng=random.Random(seed), sizes=sizes)
        slot.trajectory.initial_state = slot.state
        self.slots[rank] = slot

    def _path(self, genome: list[int]) -> torch.Tensor:
        return genome_to_path(genome, self.pathnet.layers, self.pathnet.active).to(self.device)

    def _initial_state(self) -> CoreState | None:
        state = self.batching.initial_state(self.model, self.cfg.envs_per_worker)
        return None if state is None else tuple(part.to(self.device) for part in state)

    def finished(self) -> bool:
        return int(self.base.steps.sum()) >= self.base.budget

    # --- one iteration ---

    def step(self, arrived: list[tuple[ActorSlot, Hello | StepMessage]]) -> list[dict[str, Any]]:
        """Record what ``arrived`` actors sent, act for all of them in one pass, then learn from
        the rollouts that completed; the messages for the runner."""
        completed: list[tuple[ActorSlot, Trajectory]] = []
        for slot, message in arrived:
            if isinstance(message, torch.Tensor):  # hello: a fresh actor's buffer
                slot.obs = message
                slot.starts = torch.ones(len(message), dtype=torch.bool)
                continue
            self._record(slot, message)
            if len(slot.trajectory.actions) == self.cfg.t_max:
                completed.append((slot, slot.trajectory))
        messages: list[dict[str, Any]] = []
        finishing = {slot.rank for slot, _ in completed}
        self._act([slot for slot, _ in arrived], finishing, messages)
        self._learn(completed, messages)
        return messages

    def _record(self, slot: ActorSlot, message: StepMessage) -> None:
        rewards, dones, truncated, final_obs, finished = message
        trajectory = slot.trajectory
        trajectory.rewards.append(torch.from_numpy(rewards))
        trajectory.dones.append(torch.from_numpy(dones))
        trajectory.episodes.extend(finished)
        values = torch.zeros(len(dones), device=self.device)
        if final_obs is not None:  # a time limit is not the end of the task: V(last obs)
            with torch.no_grad():
                forward = self.batching.forward(self.model, [trajectory.path])
                obs = torch.from_numpy(final_obs).to(self.device).unsqueeze(0)
                not_starts = torch.zeros((1, len(dones)), dtype=torch.bool, device=self.device)
                _, final, _ = forward(obs, not_starts, slot.state)
            cut = torch.from_numpy(truncated).to(self.device)
            values = torch.where(cut, final[0], 0.0)
        trajectory.truncation_values.append(values)
        slot.starts = torch.from_numpy(dones)

    @torch.no_grad()
    def _act(self, slots: list[ActorSlot], finishing: set[int], messages: list) -> None:
        """One forward pass for ``slots``' current observations; send each its actions. For the
        ``finishing`` ones the observations also close their rollout (its bootstrap state), and
        their tournaments run first, so a copied path acts from the new rollout on."""
        envs = self.cfg.envs_per_worker
        obs = torch.cat([slot.obs for slot in slots]).to(self.device)  # [K*E, ...]
        starts = torch.cat([slot.starts for slot in slots]).to(self.device)  # [K*E]
        for index, slot in enumerate(slots):
            part = slice(index * envs, (index + 1) * envs)
            slot.trajectory.obs.append(obs[part])
            slot.trajectory.starts.append(starts[part])
            if slot.rank in finishing:
                self._begin_rollout(slot, messages)
                slot.trajectory.obs.append(obs[part])
                slot.trajectory.starts.append(starts[part])
        paths = [slot.trajectory.path for slot in slots]
        states = [slot.state for slot in slots]
        state = None if states[0] is None else join_states(states)
        forward = self.batching.forward(self.model, paths)
        logits, _, state = forward(obs.unsqueeze(0), starts.unsqueeze(0), state)
        probs = torch.softmax(logits[0], -1)  # [K*E, A]
        actions = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)  # [K*E]
        sent = actions.cpu().numpy()
        for index, slot in enumerate(slots):
            part = slice(index * envs, (index + 1) * envs)
            slot.trajectory.actions.append(actions[part])
            if state is not None:
                slot.state = tuple(piece[part] for piece in state)
            with contextlib.suppress(OSError):  # died: its restart gets a fresh slot
                slot.conn.send(sent[part])

    def _begin_rollout(self, slot: ActorSlot, messages: list) -> None:
        """Close ``slot``'s rollout (its trajectory goes to the update) and start the next,
        after the tournament its episodes may complete (PathNet)."""
        path = slot.trajectory.path
        if slot.window is not None and self.evolve:
            fitness = slot.window.add(slot.trajectory.episodes)
            if fitness is not None:
                outcome = async_tournament(
                    self.population, slot.rank, fitness, slot.toolbox, self.pathnet.rivals
                )
                messages.append({"kind": "tournament", "rank": slot.rank,
                                 "step": int(self.base.steps.sum()), "fitness": fitness,
                                 "copied_from": outcome.copied_from})  # fmt: skip
                if outcome.copied_from is not None:
                    path = self._path(self.population.genomes[slot.rank].tolist())
                    slot.window.genome_changed()
        slot.trajectory = Trajectory(path, slot.state)

    def _learn(self, completed: list[tuple[ActorSlot, Trajectory]], messages: list) -> None:
        """One update per learning rate over the completed rollouts, then their messages."""
        by_rate: dict[float, list[tuple[ActorSlot, Trajectory]]] = {}
        for slot, trajectory in completed:
            by_rate.setdefault(float(self.base.lrs[slot.rank]), []).append((slot, trajectory))
        for lr, batch in by_rate.items():
            stats = self._update(lr, [trajectory for _, trajectory in batch])
            for slot, trajectory in batch:
                self.base.steps[slot.rank] += self.cfg.t_max * self.cfg.envs_per_worker
                self._report(slot, trajectory, stats, messages)

    def _update(self, lr: float, trajectories: list[Trajectory]) -> dict[str, float] | None:
        """One A3C update from ``trajectories`` side by side; its statistics, or None where the
        loss or gradient was not finite (the update is skipped)."""
        t_max, device = self.cfg.t_max, self.device
        paths = [trajectory.path for trajectory in trajectories]

        def columns(name: str) -> torch.Tensor:  # [T(+1), K*E]
            steps = [torch.stack(getattr(trajectory, name)) for trajectory in trajectories]
            return torch.cat(steps, dim=1).to(device)

        obs, starts = columns("obs"), columns("starts")  # [T+1, K*E, ...], [T+1, K*E]
        states = [trajectory.initial_state for trajectory in trajectories]
        state = None if states[0] is None else join_states(states)
        forward = self.batching.forward(self.model, paths)
        params = self.batching.parameters(self.model, paths)
        logits, values, _ = forward(obs, starts, state)  # [T+1, K*E, A], [T+1, K*E]
        rollout = Rollout(
            obs[:t_max], starts[:t_max], columns("actions"), columns("rewards"),
            columns("dones"), values[t_max].detach(), state, [], columns("truncation_values"),
            logits=logits[:t_max], values=values[:t_max],
        )  # fmt: skip
        grads, stats = a3c_gradients(forward, params, rollout, self.cfg, self.aux_loss)
        if not all(math.isfinite(value) for value in stats.values()):
            return None  # a NaN/inf would poison the parameters: skip it
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        apply_gradients(params, grads, self.optimizer)
        return stats

    def _report(
        self, slot: ActorSlot, trajectory: Trajectory, stats: dict[str, float] | None,
        messages: list,
    ) -> None:  # fmt: skip
        """The messages a Hogwild worker sends after an update: its rollout's episodes, and its
        statistics every ``log_every`` updates."""
        step = int(self.base.steps.sum())
        if trajectory.episodes:
            episodes = trajectory.episodes
            messages.append({"kind": "episodes", "rank": slot.rank, "step": step,
                             "returns": [episode_return for _, episode_return, _ in episodes],
                             "lengths": [length for _, _, length in episodes]})  # fmt: skip
        slot.updates += 1
        if stats is None:
            slot.skipped += 1
        else:
            slot.applied += 1
            for key, value in stats.items():
                slot.totals[key] = slot.totals.get(key, 0.0) + value
        if slot.updates % self.cfg.log_every:
            return
        averaged = {key: value / slot.applied for key, value in slot.totals.items()}
        message = {"kind": "update", "rank": slot.rank, "step": step, **averaged,
                   "skipped_updates": slot.skipped}  # fmt: skip
        routing = take_routing(self.model)
        if routing:  # where the MoE layers sent the observations since the last report
            message["moe"] = {name: r.as_lists() for name, r in routing.items()}
        messages.append(message)
        slot.totals, slot.applied, slot.skipped = {}, 0, 0

    # --- the runner's view ---

    def sync(self) -> None:
        """Copy a device learner's network and optimiser into the phase's (CPU) ones."""
        if self.model is self.base.model:
            return
        self.base.model.load_state_dict(self.model.state_dict())
        self.base.optimizer.load_state_dict(self.optimizer.state_dict())
        share = getattr(self.base.optimizer, "share_memory", None)
        if share is not None:
            share()  # the phase's optimiser stays usable by Hogwild workers

    def close(self) -> None:
        """Tell every actor to stop; drop the guard; copy the state back (:meth:`sync`)."""
        for slot in self.slots.values():
            with contextlib.suppress(OSError):  # already gone
                slot.conn.send(None)
        if self._guard is not None:
            self._guard.remove()
        self._pruned.remove()
        self.sync()


def join_states(states: list[CoreState]) -> CoreState:
    """Actors' core states side by side: each part [E, width] -> [K*E, width]."""
    return tuple(torch.cat(parts) for parts in zip(*states, strict=True))


def to_device(
    model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A copy of ``model`` on ``device`` (each library layer's modules in one storage again,
    :func:`pathevo.modules.layers.restack`) and an optimiser of ``optimizer``'s kind over it
    with the same groups, settings and state (moved to the device)."""
    moved = copy.deepcopy(model).to(device)
    index = {id(param): position for position, param in enumerate(model.parameters())}
    params = list(moved.parameters())
    groups = [
        {"params": [params[index[id(param)]] for param in group["params"]]}
        for group in optimizer.param_groups
    ]
    copied = type(optimizer)(groups, **optimizer.defaults)
    copied.load_state_dict(optimizer.state_dict())
    return moved, copied


# --- the group the phase runs ----------------------------------------------------------------


class LearnerGroup:
    """The learner mode as :func:`pathevo.agents.phase.run_phase` sees a worker group: actor
    processes (a :class:`~pathevo.agents.processes.WorkerGroup`: spawn, their directories,
    restarts with a fresh pipe and slot) and the :class:`Learner`, whose loop runs inside
    :meth:`messages` and yields the messages Hogwild workers would send.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        *,
        max_restarts: int = 0,
        on_restart: Callable[[int, str, int], None] | None = None,
        workdir: str | Path | None = None,
        join_timeout: float = 10.0,
    ) -> None:
        self.device = learner_device(str(device))
        self.actors = WorkerGroup(join_timeout, max_restarts, on_restart, workdir,
                                  restart_args=self._actor_args)  # fmt: skip
        self.stop = self.actors.stop
        """Set by the runner (a reporter) to stop the phase."""
        self.queue = self.actors.queue
        """Where actors send their errors."""
        self.learner: Learner | None = None
        self._spec: Any = None

    def __enter__(self) -> LearnerGroup:
        return self

    def start(self, target: Callable[..., None], args: list[tuple[Any, ...]]) -> None:
        """Make the learner from the workers' specs (``target``'s arguments ``(rank, spec)``)
        and start one actor per rank."""
        check_learner_target(target)
        self._spec = args[0][1]
        self.learner = Learner(self._spec, self.device)
        if self.device.type == "cpu":  # the cores the actors leave
            torch.set_num_threads(max(1, (os.cpu_count() or 1) - len(args)))
        self.actors.start(run_actor, [self._actor_args(rank) for rank, _ in args])

    def _actor_args(self, rank: int) -> tuple[Any, ...]:
        """Actor ``rank``'s arguments, with a fresh pipe and slot: at the start and at every
        restart (its environments seeded for the steps it has done, as a Hogwild worker's)."""
        mine, theirs = self.actors.context.Pipe()
        self.learner.connect(rank, mine)
        base = self._spec.a3c
        seeds = base.env_seeds(rank, int(base.steps[rank]))
        return (rank, base.env_id, seeds, theirs, self.queue)

    def messages(self, poll: float = 0.2) -> Iterator[dict[str, Any]]:
        """Run the learner until the budget is spent or :attr:`stop` is set; yield what the
        workers would have sent. Actors are checked every ``poll`` seconds (restarted, or a
        :class:`~pathevo.agents.processes.WorkerError`)."""
        learner = self.learner
        next_check = time.monotonic() + poll
        while not (bool(self.stop) or learner.finished()):
            slots = {slot.conn: slot for slot in learner.slots.values()}
            ready = multiprocessing.connection.wait(list(slots), timeout=poll)
            arrived = []
            for conn in ready:
                try:
                    arrived.append((slots[conn], conn.recv()))
                except (EOFError, OSError):  # its actor died: check (and restart) it now
                    next_check = 0.0
            if not arrived or time.monotonic() >= next_check:
                self.actors.check()
                next_check = time.monotonic() + poll
                # A restarted actor has a fresh slot: what its old one sent is dropped.
                arrived = [(slot, sent) for slot, sent in arrived
                           if learner.slots.get(slot.rank) is slot]  # fmt: skip
            if arrived:
                yield from learner.step(arrived)

    def sync(self) -> None:
        """The learner's network and optimiser into the phase's (a device learner's copy)."""
        if self.learner is not None:
            self.learner.sync()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.learner is not None:
                self.learner.close()
        finally:
            self.actors.__exit__(exc_type, exc, tb)
