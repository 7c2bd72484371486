"""PathNet-A3C: A3C workers that each train one evolving path through a shared module library.

Fernando et al. 2017, "PathNet: Evolution Channels Gradient Descent in Super Neural Networks",
arXiv:1701.08734, section 2 (parallel asynchronous tournament with A3C). Every worker owns one
path genome; it trains only its path's modules and the task's actor-critic head with A3C
(Mnih et al. 2016, arXiv:1602.01783); its fitness is the mean return over its last T episodes,
after which it runs the asynchronous tournament (:mod:`pathevo.evolution.async_tournament`). The
Atari setting: L = 4 layers of M = 10 modules, N = 4 active per layer, conv modules of 8 kernels
(8×8/4, 4×4/2, 3×3/1) and a linear last layer; learning rates may be sampled per worker
log-uniformly in [1e-4, 1e-2] (the paper's robustness study).

Frozen modules (after transfer) stay bitwise identical: the library detaches them when it gathers
a path, and the shared optimiser is guarded (``PathLibrary.guard``) in every worker.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from pathevo.agents.a3c import (
    ATARI_FRAMES,
    Hub,
    PrecisionChoice,
    Rollout,
    SharedMemoryHub,
    WorkerSpec,
    resolve_precision,
    run_worker,
    scale_obs,
    torso_precision,
)
from pathevo.agents.processes import worker_process
from pathevo.evolution.async_tournament import SharedPopulation, async_tournament
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.operators import genome_to_path
from pathevo.evolution.toolbox import make_toolbox
from pathevo.modules.actor_critic import ActorCriticHead, HeadFactory
from pathevo.modules.gating import sum_aux_losses
from pathevo.modules.heads import TaskHeads
from pathevo.modules.layers import LinearModuleLayer
from pathevo.modules.library import LayerFactory, PathLibrary, conv_library, linear_library
from pathevo.modules.recurrent import CoreState

ATARI_CONVS = ((8, 4), (4, 2), (3, 1))
"""PathNet's Atari conv modules: (kernel, stride) of the first three layers."""


@dataclass
class PathNetA3CConfig:
    """The module library and the asynchronous tournament (defaults: the paper's Atari setting)."""

    layers: int = 4
    """L: layers of the library (all but the last are conv layers for pixel observations)."""
    modules: int = 10
    """M: modules per layer."""
    active: int = 4
    """N: modules a path may use per layer."""
    kernels: int = 8
    """Output channels of each conv module."""
    units: int = 50
    """Units of each linear module (the last layer; every layer for vector observations)."""
    last_reduce: Literal["sum", "mean"] = "sum"
    """How the last shared layer combines its active modules."""
    episodes_per_evaluation: int = 10
    """T: episodes a worker plays with its path before its tournament."""
    rivals: int = 2
    """B: random other genomes a worker compares itself with."""
    max_shift: int = 2
    """Mutation moves a gene by a uniform integer in [-max_shift, max_shift]."""
    wrap: bool = False
    """Wrap mutated genes modulo M instead of clamping them."""
    sample_lr: bool = False
    """Sample each worker's learning rate log-uniformly in [lr_min, lr_max]."""
    lr_min: float = 1e-4
    """Lower end of the sampled learning rates."""
    lr_max: float = 1e-2
    """Upper end of the sampled learning rates."""

    def __post_init__(self) -> None:
        for name in ("kernels", "units", "episodes_per_evaluation", "rivals"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.lr_min <= self.lr_max:
            raise ValueError(f"need 0 < lr_min <= lr_max, got {self.lr_min}, {self.lr_max}")
        self.evo_config(2)  # validates L, M, N and the mutation settings

    def evo_config(self, population: int) -> EvoConfig:
        """The genome settings for a population of ``population`` paths (one per worker)."""
        return EvoConfig(
            layers=self.layers,
            modules=self.modules,
            active=self.active,
            population=population,
            max_shift=self.max_shift,
            wrap=self.wrap,
        )

    def learning_rates(self, workers: int, lr: float, seed: int) -> torch.Tensor:
        """[W] per-worker learning rates: ``lr`` each, or log-uniform samples if ``sample_lr``."""
        if not self.sample_lr:
            return torch.full((workers,), lr, dtype=torch.float64)
        rng = random.Random(seed)
        low, high = math.log(self.lr_min), math.log(self.lr_max)
        return torch.tensor([math.exp(rng.uniform(low, high)) for _ in range(workers)])


def pathnet_library(
    obs_shape: tuple[int, ...],
    cfg: PathNetA3CConfig,
    last_layer: LayerFactory = LinearModuleLayer,
) -> PathLibrary:
    """The module library for an observation shape.

    Vectors: L linear layers of ``units``. Atari-sized pixels: the paper's conv modules (the
    first L - 1 of 8×8/4, 4×4/2, 3×3/1) and a linear last layer. Small grids (MinAtar): L - 1
    conv layers of 3×3/1 and a linear last layer. ``last_layer`` makes that last layer (an MoE
    layer for the ``pathnet-moe`` agent).
    """
    if len(obs_shape) == 1:
        return linear_library(
            obs_shape[0], cfg.units, cfg.layers, cfg.modules, cfg.last_reduce, last_layer
        )
    if len(obs_shape) != 3:
        raise ValueError(f"unsupported observation shape {obs_shape}; need [D] or [C, H, W]")
    if cfg.layers < 2:
        raise ValueError("a pixel library needs at least 2 layers (convs, then linear)")
    if min(obs_shape[1:]) >= ATARI_FRAMES:
        if cfg.layers - 1 > len(ATARI_CONVS):
            raise ValueError(f"the Atari library has at most {len(ATARI_CONVS) + 1} layers")
        convs = [(cfg.kernels, k, s) for k, s in ATARI_CONVS[: cfg.layers - 1]]
    else:
        convs = [(cfg.kernels, 3, 1)] * (cfg.layers - 1)
    shape = (obs_shape[0], obs_shape[1], obs_shape[2])
    return conv_library(shape, convs, cfg.modules, cfg.units, cfg.last_reduce, last_layer)


def common_input_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The library input shape that serves every task: the most channels (or features).

    Tasks must agree on everything else (MinAtar games differ only in channel count; Atari
    games all give [4, 84, 84]); observations with fewer channels are zero-padded.
    """
    if len({(len(shape), *shape[1:]) for shape in shapes}) != 1:
        raise ValueError(f"observation shapes {list(shapes)} differ beyond their first dimension")
    return (max(shape[0] for shape in shapes), *shapes[0][1:])


class PathNetA3C(nn.Module):
    """A module library plus one actor-critic head per task; ``forward`` runs one path.

    ``input_shape`` is the library's input; observations with fewer channels (features) are
    zero-padded to it, so games with different channel counts share one library.
    ``precision`` is the library's arithmetic (:func:`pathevo.agents.a3c.torso_precision`;
    ``auto`` resolved for ``input_shape``, :func:`pathevo.agents.a3c.resolve_precision`); the
    heads are float32.
    """

    def __init__(
        self,
        library: PathLibrary,
        input_shape: tuple[int, ...],
        lstm: int = 0,
        precision: PrecisionChoice = "float32",
        head_factory: HeadFactory = ActorCriticHead,
    ) -> None:
        super().__init__()
        self.library = library
        self.input_shape = tuple(input_shape)
        self.heads = TaskHeads()
        self.lstm = lstm
        self.precision = resolve_precision(precision, self.input_shape)
        self.head_factory = head_factory

    def add_task(self, task: str, num_actions: int) -> nn.Module:
        """A fresh head for ``task`` (replacing any earlier one of that name) and the task's
        parts of the library (an MoE layer's gate)."""
        self.library.add_task(task)
        head = self.head_factory(self.library.output_size, num_actions, self.lstm)
        self.heads.add(task, head)
        return head

    def initial_state(self, task: str, batch: int) -> CoreState | None:
        return self.heads[task].initial_state(batch)

    def path_parameters(self, path: torch.Tensor, task: str) -> list[nn.Parameter]:
        """The parameters ``path`` ([L, N]) and ``task``'s head train, in a fixed order: O(N)."""
        return self.library.path_parameters(path, task) + list(self.heads[task].parameters())

    def take_aux_loss(self) -> torch.Tensor | None:
        """The balancing losses of the library's and the heads' MoE layers since the last call."""
        return sum_aux_losses(self.library, *self.heads.heads.values())

    def forward(
        self,
        obs: torch.Tensor,
        starts: torch.Tensor,
        state: CoreState | None,
        *,
        path: torch.Tensor,
        task: str,
    ) -> tuple[torch.Tensor, torch.Tensor, CoreState | None]:
        # obs: [T, B, ...]; starts: [T, B] bool; path: [L, N] long
        # -> logits [T, B, A], values [T, B], state
        steps, batch = obs.shape[:2]
        x = obs.flatten(0, 1)  # [T*B, C, ...]
        missing = self.input_shape[0] - x.shape[1]
        if missing > 0:
            x = torch.cat([x, x.new_zeros(x.shape[0], missing, *x.shape[2:])], dim=1)
        with torso_precision(self.precision):
            features = self.library(scale_obs(x), path, task)  # [T*B, F]
        return self.heads[task](features.float().view(steps, batch, -1), starts, state)

    def forward_paths(
        self,
        obs: torch.Tensor,
        starts: torch.Tensor,
        state: CoreState | None,
        *,
        paths: torch.Tensor,
        task: str,
    ) -> tuple[torch.Tensor, torch.Tensor, CoreState | None]:
        """:meth:`forward` for P actors at once, each along its own path, in one
        :meth:`~pathevo.modules.library.PathLibrary.forward_population`: the batch is the P
        actors' environments side by side, actor p's the p-th of P equal slices."""
        # obs: [T, P*E, ...]; starts: [T, P*E] bool; paths: [P, L, N] long
        # -> logits [T, P*E, A], values [T, P*E], state
        steps, batch = obs.shape[:2]
        count = paths.shape[0]
        if batch % count:
            raise ValueError(f"a batch of {batch} does not split into {count} equal slices")
        envs = batch // count
        x = obs.unflatten(1, (count, envs)).transpose(0, 1).flatten(1, 2)  # [P, T*E, ...]
        x = x.flatten(0, 1)  # [P*T*E, C, ...]
        missing = self.input_shape[0] - x.shape[1]
        if missing > 0:
            x = torch.cat([x, x.new_zeros(x.shape[0], missing, *x.shape[2:])], dim=1)
        with torso_precision(self.precision):
            pixels = scale_obs(x).unflatten(0, (count, steps * envs))  # [P, T*E, C, ...]
            features = self.library.forward_population(pixels, paths, task)  # [P, T*E, F]
        features = features.float().unflatten(1, (steps, envs)).transpose(0, 1)  # [T, P, E, F]
        return self.heads[task](features.flatten(1, 2), starts, state)

    def task_logits(self, x: torch.Tensor, *, path: torch.Tensor, task: str) -> torch.Tensor:
        """``task``'s policy logits of single observations along ``path``, each from a fresh
        core state: how a task is scored outside acting (held-out probes, a classifier)."""
        # x: [B, ...]; path: [L, N] long -> logits [B, A]
        starts = torch.zeros(1, x.shape[0], dtype=torch.bool)
        state = self.initial_state(task, x.shape[0])
        return self(x.unsqueeze(0), starts, state, path=path, task=task)[0][0]


@dataclass
class PathNetWorkerSpec:
    """A PathNet-A3C worker: the A3C spec (``model`` is a shared :class:`PathNetA3C`) and more."""

    a3c: WorkerSpec
    population: SharedPopulation
    pathnet: PathNetA3CConfig
    task: str
    """The head the worker trains."""
    evolve: bool = True
    """Run tournaments; False keeps every worker on its initial path (the fine-tuning control)."""


class PathHub(Hub, Protocol):
    """A :class:`~pathevo.agents.a3c.Hub` that also holds the population of path genomes."""

    def genome(self, rank: int) -> list[int]:
        """Slot ``rank``'s flat genome as it is now."""
        ...

    def tournament(self, rank: int, fitness: float) -> int | None:
        """Slot ``rank``'s asynchronous tournament with ``fitness``
        (:func:`pathevo.evolution.async_tournament.async_tournament`): the rival it copied, if
        any."""
        ...


class SharedPopulationHub(SharedMemoryHub):
    """The hub of local PathNet worker processes: the population in shared memory too, and
    worker ``rank``'s tournaments drawn from ``random.Random`` seeded with its session seed
    (:meth:`pathevo.agents.a3c.WorkerSpec.session_seed`)."""

    def __init__(self, spec: PathNetWorkerSpec, rank: int) -> None:
        super().__init__(spec.a3c, rank)
        self.population, self.rivals = spec.population, spec.pathnet.rivals
        evo = spec.pathnet.evo_config(len(spec.population))
        sizes = spec.a3c.model.library.modules_per_layer  # per-layer M (a library may have grown)
        seed = spec.a3c.session_seed(rank, self.done(rank))
        self.toolbox = make_toolbox(evo, rng=random.Random(seed), sizes=sizes)

    def genome(self, rank: int) -> list[int]:
        return self.population.genomes[rank].tolist()

    def tournament(self, rank: int, fitness: float) -> int | None:
        return async_tournament(
            self.population, rank, fitness, self.toolbox, self.rivals
        ).copied_from


def pathnet_worker(rank: int, spec: PathNetWorkerSpec, hub: PathHub | None = None) -> None:
    """Train slot ``rank``'s path with A3C; after every T episodes, run its tournament.

    Without ``hub``, a local worker process (the model and population in shared memory);
    with one (a Ray actor's), ``spec.a3c.model`` is the actor's own copy.
    """
    base = spec.a3c
    if hub is None:
        with worker_process(rank, base.queue):
            base.model.library.guard(base.optimizer)  # frozen modules stay bitwise identical
            _train_path(rank, spec, copy.deepcopy(base.model), SharedPopulationHub(spec, rank))
        return
    _train_path(rank, spec, base.model, hub)


class FitnessWindow:
    """A worker's fitness: the mean return of the last T episodes played entirely with its
    current genome (an episode that began before the genome changed does not count)."""

    def __init__(self, envs: int, episodes_per_evaluation: int) -> None:
        self.started_in = [0] * envs  # genome version each env's episode began in
        self.version = 0
        self.window: list[float] = []
        self.episodes_per_evaluation = episodes_per_evaluation

    def add(self, episodes: list[tuple[int, float, int]]) -> float | None:
        """Count a rollout's finished ``(env index, return, length)`` episodes; the fitness
        once T of them are in (and a fresh window), else None."""
        for env_index, episode_return, _ in episodes:
            if self.started_in[env_index] == self.version:
                self.window.append(episode_return)
            self.started_in[env_index] = self.version
        if len(self.window) < self.episodes_per_evaluation:
            return None
        last = self.window[-self.episodes_per_evaluation :]
        self.window.clear()
        return sum(last) / len(last)

    def genome_changed(self) -> None:
        """The worker copied a rival: episodes running now began with the old genome."""
        self.version += 1


def _train_path(rank: int, spec: PathNetWorkerSpec, local: PathNetA3C, hub: PathHub) -> None:
    base, cfg = spec.a3c, spec.pathnet
    layers, active = cfg.layers, cfg.active
    current = {"path": genome_to_path(hub.genome(rank), layers, active)}
    fitness_window = FitnessWindow(base.cfg.envs_per_worker, cfg.episodes_per_evaluation)

    def forward(
        obs: torch.Tensor, starts: torch.Tensor, state: CoreState | None
    ) -> tuple[torch.Tensor, torch.Tensor, CoreState | None]:
        return local(obs, starts, state, path=current["path"], task=spec.task)

    def after_rollout(rollout: Rollout) -> None:
        if not spec.evolve:
            return
        fitness = fitness_window.add(rollout.episodes)
        if fitness is None:
            return
        copied_from = hub.tournament(rank, fitness)
        hub.report(
            {"kind": "tournament", "rank": rank, "step": hub.step(), "fitness": fitness,
             "copied_from": copied_from}
        )  # fmt: skip
        if copied_from is not None:
            current["path"] = genome_to_path(hub.genome(rank), layers, active)
            fitness_window.genome_changed()

    def parameters() -> tuple[list[torch.Tensor], list[Any]]:
        mine = local.path_parameters(current["path"], spec.task)
        return mine, hub.keys(local, mine)

    state = local.initial_state(spec.task, base.cfg.envs_per_worker)
    run_worker(
        rank, base, forward, parameters, state, after_rollout=after_rollout, local=local, hub=hub
    )
