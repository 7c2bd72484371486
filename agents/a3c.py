"""A3C: asynchronous advantage actor-critic with Hogwild workers.

Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement Learning", arXiv:1602.01783.
Each worker keeps a private copy of the shared network, and repeatedly: copies the shared
parameters into it, acts for ``t_max`` steps, computes n-step returns bootstrapped from the value
of the last state, and applies the gradient of the actor-critic loss to the *shared* parameters
with a shared optimiser, without locks.

For CPU throughput a worker may step several environments and batch their inference. The loss
needs the rollout's logits and values with their autograd graph, in one of two ways
(``A3CConfig.recompute``): act without autograd and recompute the whole rollout ``[T, E]`` in one
batched pass (the same parameters, so the same values and logits as during acting; best with
few environments per worker), or keep the acting pass's graph and skip the second forward pass
(measured: about 10% faster with 32 environments per worker, no faster with 8).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import numpy as np
import torch
import tyro
from torch import nn

from pathevo.agents.env_batch import EnvBatchLike, make_env_batch
from pathevo.agents.processes import worker_process
from pathevo.agents.returns import a3c_loss, gae_advantages, n_step_returns
from pathevo.agents.shared_optim import apply_gradients
from pathevo.modules.actor_critic import ActorCriticHead, HeadFactory
from pathevo.modules.cores import DEFAULT_CORE, CoreSpec, core_kind, core_names
from pathevo.modules.gating import sum_aux_losses
from pathevo.modules.library import PathLibrary
from pathevo.modules.moe import take_routing
from pathevo.modules.recurrent import CoreState

Forward = Callable[
    [torch.Tensor, torch.Tensor, CoreState | None],
    tuple[torch.Tensor, torch.Tensor, CoreState | None],
]
"""``forward(obs [T, E, ...], starts [T, E], state)`` -> logits [T, E, A], values [T, E], state."""

AuxLoss = Callable[[], torch.Tensor | None]
"""``() -> the model's auxiliary loss since the last call`` (``take_aux_loss``), or ``None``."""

Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16")
PrecisionChoice = Literal["auto", "float32", "bfloat16"]
"""A torso precision, or ``auto``: :func:`resolve_precision` picks one for the torso."""
Mode = Literal["hogwild", "learner"]
MODES: tuple[Mode, ...] = ("hogwild", "learner")
"""How A3C runs: Hogwild worker processes, or CPU actors around one batching learner."""
ATARI_FRAMES = 36
"""Frames at least this many pixels high and wide get Atari's conv torso (strided 8×8 and 4×4
convs); smaller grids (MinAtar's 10×10) a 3×3 conv."""

CoreName = Annotated[str, tyro.conf.arg(metavar="{" + ",".join(core_names()) + "}")]
"""A registered core kind's name (:data:`pathevo.modules.cores.CORE_KINDS`): a ``str`` whose help
lists the registry's names, checked in ``__post_init__`` so an unknown one gets the registry's
message with suggestions (as the runners' ``choice_of``)."""


@dataclass
class A3CConfig:
    """A3C hyperparameters (defaults: the A3C/PathNet paper's, with RMSProp)."""

    t_max: int = 20
    """Steps per environment in one rollout (the n of the n-step returns)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float | None = None
    """GAE λ for the advantages; None uses plain n-step returns (the paper)."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    value_coef: float = 0.5
    """Weight of the value loss ½(R - V)²."""
    max_grad_norm: float = 40.0
    """Clip the global gradient norm of each update to this value."""
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    """Shared optimiser: RMSProp with shared statistics (the paper) or shared Adam."""
    lr: float = 7e-4
    """Learning rate (of every worker, unless PathNet samples one per worker)."""
    rmsprop_alpha: float = 0.99
    """RMSProp decay α."""
    rmsprop_eps: float = 0.1
    """RMSProp ε (inside the square root, as in the paper)."""
    envs_per_worker: int = 1
    """Environments a worker steps in lockstep, with one batched inference per step."""
    recompute: bool = True
    """Act without autograd and recompute the loss over the rollout in one batched pass; False
    keeps the acting pass's graph instead (no second forward; faster with many envs per worker)."""
    hidden: int = 256
    """Units of the fully connected layer(s) of the standard network."""
    lstm: int = 0
    """Units of the recurrent core between torso and heads (its kind: core); 0 for a
    feed-forward agent."""
    core: CoreName = "lstm"
    """The recurrent core's kind when lstm > 0, one registered in modules/cores.py: lstm, a plain
    LSTM; hyperlstm, a HyperLSTM (Ha et al. 2016) whose small hyper LSTM rescales the main
    LSTM's weight rows at every step."""
    hyper_units: int = 32
    """Units of the HyperLSTM's hyper LSTM (core hyperlstm only)."""
    hyper_embedding: int = 4
    """Size of the HyperLSTM's per-gate embeddings z (core hyperlstm only; the paper's 4)."""
    hyper_layer_norm: bool = True
    """Layer-normalise the HyperLSTM's gates and cell (core hyperlstm only; on CartPole it
    learned several times faster with it)."""
    precision: PrecisionChoice = "auto"
    """Arithmetic of the torso (conv and linear layers below the heads): float32, bfloat16 mixed
    precision (autocast: parameters, heads, loss and optimiser stay float32; fastest on CPUs
    with AVX-512 BF16 or AMX, slower on CPUs without them), or auto: bfloat16 for Atari-sized
    frames on a CPU with bfloat16 instructions, float32 otherwise (MinAtar's grids, vectors)."""
    clip_rewards: bool = True
    """Clip rewards to [-1, 1] for learning (returns are reported unclipped)."""
    log_every: int = 10
    """Updates between the loss statistics a worker sends to the runner."""
    mode: Mode = "hogwild"
    """hogwild: every worker process acts and learns on the CPU with its own copy of the network
    (Mnih et al. 2016); learner: actor processes only step their environments and one learner in
    the runner's process batches every actor's forward pass and applies the updates (GA3C,
    Babaeizadeh et al. 2017; agents/learner.py, docs/a3c.md)."""
    device: str = "cpu"
    """Where the learner mode's learner keeps the network, optimiser state and rollouts: cpu,
    cuda, cuda:N or auto (CUDA when present). Hogwild workers always run on the CPU."""

    def __post_init__(self) -> None:
        for name in ("t_max", "envs_per_worker", "hidden", "log_every", "hyper_units",
                     "hyper_embedding"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma}")
        if self.gae_lambda is not None and not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must lie in [0, 1], got {self.gae_lambda}")
        if self.lr <= 0 or self.max_grad_norm <= 0:
            raise ValueError("lr and max_grad_norm must be positive")
        if self.entropy_coef < 0 or self.value_coef < 0 or self.lstm < 0:
            raise ValueError("entropy_coef, value_coef and lstm must be non-negative")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose rmsprop or adam")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(
                f"unknown precision {self.precision!r}; choose auto or one of {PRECISIONS}"
            )
        core_kind(self.core)  # a one-line error naming the close kinds
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {MODES}")
        device = learner_device(self.device)  # CUDA asked for and absent: one line
        if self.mode == "hogwild" and self.device != "auto" and device.type != "cpu":
            raise ValueError(
                f"device {self.device!r} needs mode learner: Hogwild workers run on the CPU"
            )

    def core_spec(self) -> CoreSpec:
        """This config's recurrent core: its kind, with the fields that kind reads
        (:attr:`pathevo.modules.cores.CoreKind.settings`, e.g. ``hyper_units`` for a HyperLSTM)."""
        kind = core_kind(self.core)
        return CoreSpec(self.core, {name: getattr(self, name) for name in kind.settings})

    def head_factory(self, head: Callable[..., nn.Module] = ActorCriticHead) -> HeadFactory:
        """``head`` (a head class, or a ``partial`` of one, taking :class:`ActorCriticHead`'s
        ``core`` keyword) with this config's recurrent core; picklable. The default core leaves
        ``head`` as it is."""
        spec = self.core_spec()
        return head if spec == DEFAULT_CORE else functools.partial(head, core=spec)


def learner_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when present) as a device; a one-line
    ValueError for anything else, or for CUDA where there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}; use cpu, cuda, cuda:N or auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


# --- networks --------------------------------------------------------------------------------


def scale_obs(obs: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to [0, 1]; anything else to float as it is.

    obs: [B, ...]. Image batches [B, C, H, W] come out channels-last: on a CPU, oneDNN runs the
    convolutions' backward pass about twice as fast in that layout. Under bfloat16 autocast
    they come out in bfloat16, the values the convolution would cast them to (one pass over
    the batch fewer, half the bytes).
    """
    if obs.dim() != 4:
        return obs.float().mul_(1.0 / 255.0) if obs.dtype == torch.uint8 else obs.float()
    # Channel by channel into a [B, H, W, C] buffer: half the time of a layout-changing copy of
    # the whole batch (a strided uint8 copy with C innermost is slow).
    batch, channels, height, width = obs.shape
    autocast = torch.is_autocast_enabled(obs.device.type)
    dtype = torch.get_autocast_dtype(obs.device.type) if autocast else torch.float32
    pixels = torch.empty((batch, height, width, channels), dtype=dtype, device=obs.device)
    for channel in range(channels):
        pixels[..., channel] = obs[:, channel]
    if obs.dtype == torch.uint8:
        pixels.mul_(1.0 / 255.0)
    return pixels.permute(0, 3, 1, 2)  # [B, C, H, W] channels-last


def native_bfloat16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX-512 BF16 or AMX) for oneDNN to use.

    oneDNN's own check (``_is_mkldnn_bf16_supported``) also says yes on plain AVX-512, where it
    emulates bfloat16 more slowly than float32; torch's cpuinfo flags tell the two apart.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(choice: PrecisionChoice, obs_shape: tuple[int, ...]) -> Precision:
    """The torso precision ``choice`` means for observations of ``obs_shape``: ``auto`` is
    bfloat16 for Atari-sized frames (:data:`ATARI_FRAMES` pixels and more) on a CPU with
    bfloat16 instructions, where it takes about a quarter off PathNet-A3C's network time,
    and float32 otherwise: MinAtar's 10×10 convs and small MLPs run slower in bfloat16 (the
    casts cost more than the arithmetic saves; docs/a3c.md)."""
    if choice != "auto":
        if choice not in PRECISIONS:
            raise ValueError(f"unknown precision {choice!r}; choose auto or one of {PRECISIONS}")
        return choice
    atari_sized = len(obs_shape) == 3 and min(obs_shape[1:]) >= ATARI_FRAMES
    return "bfloat16" if atari_sized and native_bfloat16() else "float32"


def torso_precision(precision: Precision) -> contextlib.AbstractContextManager:
    """The context a torso runs in: bfloat16 autocast on the CPU, or nothing for float32.

    Under autocast convolutions and matrix products take bfloat16 copies of their inputs and
    weights and return bfloat16; gradients still reach the float32 parameters. Callers convert
    the torso's output back to float32 for the heads.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def standard_torso(obs_shape: tuple[int, ...], hidden: int) -> tuple[nn.Module, int]:
    """The usual network below the heads for an observation shape, and its feature size.

    Vectors: a 2-layer tanh MLP. Atari-sized pixels (≥ 36 px): Mnih et al. 2016's conv net
    (16 8×8/4, 32 4×4/2, fully connected). Small grids (MinAtar): Young & Tian 2019's 16 3×3/1
    conv and a fully connected layer.
    """
    if len(obs_shape) == 1:
        torso = nn.Sequential(
            nn.Linear(obs_shape[0], hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        return torso, hidden
    if len(obs_shape) != 3:
        raise ValueError(f"unsupported observation shape {obs_shape}; need [D] or [C, H, W]")
    channels, height, width = obs_shape
    if min(height, width) >= ATARI_FRAMES:
        convs = nn.Sequential(
            nn.Conv2d(channels, 16, 8, stride=4), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(), nn.Flatten(),
        )  # fmt: skip
    elif min(height, width) >= 3:
        convs = nn.Sequential(nn.Conv2d(channels, 16, 3), nn.ReLU(), nn.Flatten())
    else:
        raise ValueError(f"observation {obs_shape} is too small for a conv torso")
    with torch.no_grad():
        flat = convs(torch.zeros(1, *obs_shape)).shape[1]
    return nn.Sequential(convs, nn.Linear(flat, hidden), nn.ReLU()), hidden


class A3CNet(nn.Module):
    """The plain A3C agent: a standard torso and a head from ``head_factory`` (the actor-critic
    head, optionally with an LSTM; an MoE head for the ``moe`` agent).

    ``precision`` is the torso's arithmetic (:func:`torso_precision`; ``auto`` is resolved for
    ``obs_shape`` by :func:`resolve_precision`); the head is float32.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_actions: int,
        hidden: int = 256,
        lstm: int = 0,
        precision: PrecisionChoice = "float32",
        head_factory: HeadFactory = ActorCriticHead,
    ) -> None:
        super().__init__()
        self.torso, features = standard_torso(obs_shape, hidden)
        self.head = head_factory(features, num_actions, lstm)
        self.precision = resolve_precision(precision, obs_shape)
        self.library: PathLibrary | None = None  # one network, no paths (PathNetA3C has one)

    def initial_state(self, batch: int) -> CoreState | None:
        return self.head.initial_state(batch)

    def take_aux_loss(self) -> torch.Tensor | None:
        """The head's balancing loss since the last call (an MoE head), else ``None``."""
        return sum_aux_losses(self.head)

    def forward(
        self, obs: torch.Tensor, starts: torch.Tensor, state: CoreState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, CoreState | None]:
        # obs: [T, B, ...]; starts: [T, B] bool -> logits [T, B, A], values [T, B], state
        steps, batch = obs.shape[:2]
        with torso_precision(self.precision):
            features = self.torso(scale_obs(obs.flatten(0, 1)))  # [T*B, F]
        return self.head(features.float().view(steps, batch, -1), starts, state)

    def task_logits(
        self, x: torch.Tensor, *, path: torch.Tensor | None = None, task: str | None = None
    ) -> torch.Tensor:
        """Policy logits of single observations, each from a fresh core state: how a task is
        scored outside acting (a classifier's class scores). One network serves its one task,
        so ``path`` and ``task`` are ignored (a path agent's counterpart uses them)."""
        # x: [B, ...] -> logits [B, A]
        del path, task
        starts = torch.zeros(1, x.shape[0], dtype=torch.bool)
        return self(x.unsqueeze(0), starts, self.initial_state(x.shape[0]))[0][0]


# --- acting ----------------------------------------------------------------------------------


@dataclass
class Rollout:
    """t_max steps of E environments, enough to recompute the loss in one pass."""

    obs: torch.Tensor  # [T, E, ...] as the env returned it (uint8 pixels stay uint8)
    starts: torch.Tensor  # [T, E] bool, obs[t] is the first of an episode
    actions: torch.Tensor  # [T, E] long
    rewards: torch.Tensor  # [T, E] float
    dones: torch.Tensor  # [T, E] bool, the episode ended with step t
    bootstrap: torch.Tensor  # [E] V(s_T), the value of the state after the rollout
    initial_state: CoreState | None  # recurrent core state before obs[0]
    episodes: list[tuple[int, float, int]]  # finished (env index, return, length)
    truncation_values: torch.Tensor  # [T, E] V(last obs) of an episode a time limit cut at t, or 0
    logits: torch.Tensor | None = None  # [T, E, A] of the acting pass, with its graph (or None)
    values: torch.Tensor | None = None  # [T, E] of the acting pass, with its graph (or None)

    @property
    def num_steps(self) -> int:
        return self.actions.numel()


def collect_rollout(
    forward: Forward,
    envs: EnvBatchLike,
    t_max: int,
    state: CoreState | None,
    *,
    keep_graph: bool = False,
) -> tuple[Rollout, CoreState | None]:
    """Act ``t_max`` steps in every env with actions sampled from the policy.

    Without autograd by default; ``keep_graph`` runs the acting pass with autograd and keeps its
    logits and values (with their graph) in the rollout, so the loss needs no second pass. The
    returned core state carries no graph (truncated backpropagation at rollout boundaries).
    """
    size = len(envs)
    obs = torch.empty((t_max, size, *envs.obs.shape[1:]), dtype=envs.obs.dtype)
    starts = torch.empty((t_max, size), dtype=torch.bool)
    actions = torch.empty((t_max, size), dtype=torch.long)
    rewards = torch.empty((t_max, size))
    dones = torch.empty((t_max, size), dtype=torch.bool)
    truncation_values = torch.zeros((t_max, size))
    initial_state, episodes = state, []
    kept_logits, kept_values = [], []
    with torch.set_grad_enabled(keep_graph):
        for t in range(t_max):
            obs[t], starts[t] = envs.obs, envs.starts
            logits, values, state = forward(envs.obs.unsqueeze(0), envs.starts.unsqueeze(0), state)
            if keep_graph:
                kept_logits.append(logits[0])
                kept_values.append(values[0])
            with torch.no_grad():
                actions[t] = torch.multinomial(torch.softmax(logits[0], -1), 1).squeeze(1)
            step = envs.step(actions[t].numpy())
            rewards[t], dones[t] = step.rewards, step.dones
            episodes += step.finished
            if step.final_obs is not None:  # a time limit is not the end of the task
                with torch.no_grad():
                    not_starts = torch.zeros((1, size), dtype=torch.bool)
                    _, final, _ = forward(step.final_obs.unsqueeze(0), not_starts, state)
                truncation_values[t] = torch.where(step.truncated, final[0], 0.0)
    with torch.no_grad():
        _, bootstrap, _ = forward(envs.obs.unsqueeze(0), envs.starts.unsqueeze(0), state)
    if state is not None:
        state = tuple(part.detach() for part in state)
    rollout = Rollout(
        obs, starts, actions, rewards, dones, bootstrap[0], initial_state, episodes,
        truncation_values,
    )  # fmt: skip
    if keep_graph:
        rollout.logits, rollout.values = torch.stack(kept_logits), torch.stack(kept_values)
    return rollout, state


def a3c_gradients(
    forward: Forward,
    params: list[torch.Tensor],
    rollout: Rollout,
    cfg: A3CConfig,
    aux_loss: AuxLoss | None = None,
) -> tuple[list[torch.Tensor | None], dict[str, float]]:
    """Fresh, clipped gradients of the A3C loss of ``rollout`` w.r.t. ``params``, and stats.

    The logits and values come from the rollout's acting pass if it kept them, else from one
    batched pass of ``forward`` over the rollout. A parameter that does not require a gradient
    (a frozen module) or that the loss does not use gets ``None``, which the optimiser skips.
    ``aux_loss()`` (MoE balancing) is taken after the pass the loss uses and added to it.
    """
    if rollout.logits is not None and rollout.values is not None:
        logits, values = rollout.logits, rollout.values
    else:
        logits, values, _ = forward(rollout.obs, rollout.starts, rollout.initial_state)
    rewards = rollout.rewards.clamp(-1.0, 1.0) if cfg.clip_rewards else rollout.rewards
    # An episode cut by a time limit ends its return with γ·V(its last observation) (the step
    # is marked done, so nothing after the restart leaks in).
    rewards = rewards + cfg.gamma * rollout.truncation_values
    baseline = values.detach()  # [T, E]
    if cfg.gae_lambda is None:
        returns = n_step_returns(rewards, rollout.dones, rollout.bootstrap, cfg.gamma)
        advantages = returns - baseline
    else:
        advantages = gae_advantages(
            rewards, baseline, rollout.dones, rollout.bootstrap, cfg.gamma, cfg.gae_lambda
        )
        returns = advantages + baseline
    loss = a3c_loss(
        logits.flatten(0, 1),
        rollout.actions.flatten(),
        values.flatten(),
        returns.flatten(),
        advantages.flatten(),
        cfg.value_coef,
        cfg.entropy_coef,
    )
    total, aux = loss.total, aux_loss() if aux_loss is not None else None
    if aux is not None:
        total = total + aux
    trainable = [p for p in params if p.requires_grad]
    found = iter(torch.autograd.grad(total, trainable, allow_unused=True))
    grads = [next(found) if p.requires_grad else None for p in params]
    present = [g for g in grads if g is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present]))
    scale = min(1.0, cfg.max_grad_norm / (float(norm) + 1e-6))
    if scale < 1.0:
        for grad in present:
            grad.mul_(scale)
    stats = {
        "policy_loss": float(loss.policy.detach()),
        "value_loss": float(loss.value.detach()),
        "entropy": float(loss.entropy.detach()),
        "grad_norm": float(norm),
    }
    if aux is not None:
        stats["aux_loss"] = float(aux.detach())
    return grads, stats


# --- the worker ------------------------------------------------------------------------------


@dataclass
class WorkerSpec:
    """Everything a worker needs, picklable to a spawned process (tensors in shared memory)."""

    env_id: str
    seed: int
    workers: int
    cfg: A3CConfig
    model: nn.Module
    """The shared network (``share_memory()`` called)."""
    optimizer: torch.optim.Optimizer
    """A shared optimiser over ``model``'s parameters (pickled with it, so identities hold)."""
    steps: torch.Tensor
    """[W] long, shared: environment steps done by each worker (the budget counts their sum)."""
    budget: int
    """Stop when all workers together have done this many environment steps."""
    stop: torch.Tensor
    """[] bool, shared: set by the runner to stop the workers early."""
    queue: Any
    """Where metrics go (the runner's process writes TensorBoard)."""
    lrs: torch.Tensor
    """[W] float: each worker's learning rate."""

    @property
    def a3c(self) -> WorkerSpec:
        """This spec: the A3C part of any worker's spec (a PathNet worker's is its ``a3c``
        field), so code handed either reads ``spec.a3c`` without asking which it is."""
        return self

    @property
    def population(self) -> None:
        """No population of paths: an A3C worker trains one network (a PathNet worker's spec
        holds its population here)."""
        return None

    @property
    def pathnet(self) -> None:
        """No PathNet settings (a PathNet worker's spec holds them here)."""
        return None

    def session_seed(self, rank: int, done: int = 0) -> int:
        """The seed of worker ``rank``'s random streams (its actions, environments and
        tournaments) in a session that starts after it did ``done`` environment steps:
        ``seed + rank`` for a worker that has done none (a fresh run); else one drawn from
        (seed, rank, done), so a resumed or restarted worker never replays an earlier
        session's episodes and draws, and two resumes from one checkpoint draw alike."""
        if done == 0:
            return self.seed + rank
        entropy = [self.seed & 0xFFFFFFFF, rank, done]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)

    def env_seeds(self, rank: int, done: int = 0) -> list[int]:
        """Distinct env seeds: ``s + j * workers`` for the worker's j-th env, ``s`` its
        :meth:`session_seed` (``seed + rank`` on a fresh run)."""
        first = self.session_seed(rank, done)
        return [first + j * self.workers for j in range(self.cfg.envs_per_worker)]

    def finished(self) -> bool:
        return bool(self.stop) or int(self.steps.sum()) >= self.budget


ParameterPairs = Callable[[], tuple[list[torch.Tensor], list[Any]]]
"""``() -> (local parameters, their keys in the worker's hub)`` for the next update: for
:class:`SharedMemoryHub`, the same parameters of the shared model."""


def sync_parameters(local: list[torch.Tensor], shared: list[torch.Tensor]) -> None:
    """Copy the shared parameters into the worker's private network."""
    with torch.no_grad():
        for mine, theirs in zip(local, shared, strict=True):
            mine.copy_(theirs)


class Hub(Protocol):
    """Where a worker meets the others: the shared parameters, the optimiser, the step count
    and the runner's messages. Local processes share memory (:class:`SharedMemoryHub`); Ray
    actors talk to a parameter-server actor (:mod:`pathevo.agents.ray_workers`)."""

    def pull(self, local: list[torch.Tensor], keys: list[Any]) -> None:
        """Copy the shared values of ``keys`` into the worker's ``local`` parameters."""
        ...

    def push(
        self, rank: int, keys: list[Any], grads: list[torch.Tensor | None] | None, num_steps: int
    ) -> int:
        """Step the shared optimiser with ``grads`` for ``keys`` (``None``: a skipped update),
        count ``num_steps`` environment steps of worker ``rank``; the global step after that."""
        ...

    def keys(self, local: nn.Module, params: list[torch.Tensor]) -> list[Any]:
        """The keys of ``params``, parameters of the worker's private network ``local``."""
        ...

    def report(self, message: dict[str, Any]) -> None:
        """Send ``message`` (an episode, an update's statistics, a tournament) to the runner."""
        ...

    def step(self) -> int:
        """The global environment step as this worker last saw it."""
        ...

    def done(self, rank: int) -> int:
        """Environment steps worker ``rank`` has done so far, over every session of the run."""
        ...

    def finished(self) -> bool:
        """The budget is spent or the runner asked the workers to stop."""
        ...


class SharedMemoryHub:
    """The Hogwild hub of local worker processes: parameters, optimiser statistics and step
    counters in shared memory, messages on the runner's queue. Worker ``rank`` steps the
    optimiser at its own learning rate (its process's copy of the param groups)."""

    def __init__(self, spec: WorkerSpec, rank: int) -> None:
        self.spec = spec
        self._shared: tuple[nn.Module, dict[int, nn.Parameter]] | None = None
        for group in spec.optimizer.param_groups:
            group["lr"] = float(spec.lrs[rank])

    def keys(self, local: nn.Module, params: list[torch.Tensor]) -> list[Any]:
        """The shared model's counterparts of ``params`` (``local`` is a deep copy of it)."""
        if self._shared is None or self._shared[0] is not local:
            pairs = zip(local.parameters(), self.spec.model.parameters(), strict=True)
            self._shared = (local, {id(mine): shared for mine, shared in pairs})
        return [self._shared[1][id(param)] for param in params]

    def pull(self, local: list[torch.Tensor], keys: list[Any]) -> None:
        sync_parameters(local, keys)

    def push(
        self, rank: int, keys: list[Any], grads: list[torch.Tensor | None] | None, num_steps: int
    ) -> int:
        if grads is not None:
            apply_gradients(keys, grads, self.spec.optimizer)
        self.spec.steps[rank] += num_steps
        return self.step()

    def report(self, message: dict[str, Any]) -> None:
        self.spec.queue.put(message)

    def step(self) -> int:
        return int(self.spec.steps.sum())

    def done(self, rank: int) -> int:
        return int(self.spec.steps[rank])

    def finished(self) -> bool:
        return self.spec.finished()


def run_worker(
    rank: int,
    spec: WorkerSpec,
    forward: Forward,
    parameters: ParameterPairs,
    state: CoreState | None,
    *,
    after_rollout: Callable[[Rollout], None] | None = None,
    local: nn.Module | None = None,
    hub: Hub | None = None,
) -> None:
    """The A3C loop shared by plain and PathNet workers: sync, act, update shared, report.

    ``forward`` runs the worker's private network; ``parameters`` says which of its parameters
    take part in the next update (PathNet: only the current path's modules and the task head,
    so an update costs O(N), not O(M)) and their keys in ``hub`` (default: the shared model's
    parameters, :class:`SharedMemoryHub`); ``state`` is the initial core state (carried across
    rollouts without its graph). ``local``, the private network, adds its auxiliary losses
    (``take_aux_loss``: MoE balancing) to each update and reports its MoE layers' routing.
    """
    cfg = spec.cfg
    hub = SharedMemoryHub(spec, rank) if hub is None else hub
    done = hub.done(rank)  # > 0: resumed or restarted; new random streams (session_seed)
    torch.manual_seed(spec.session_seed(rank, done))
    envs = make_env_batch(spec.env_id, spec.env_seeds(rank, done))
    aux_loss = getattr(local, "take_aux_loss", None)
    totals: dict[str, float] = {}
    updates = applied = skipped = 0  # this reporting stretch: all, finite, skipped updates
    try:
        while not hub.finished():
            local_params, keys = parameters()
            hub.pull(local_params, keys)
            rollout, state = collect_rollout(
                forward, envs, cfg.t_max, state, keep_graph=not cfg.recompute
            )
            grads, stats = a3c_gradients(forward, local_params, rollout, cfg, aux_loss)
            finite = all(math.isfinite(value) for value in stats.values())
            # A NaN/inf loss or gradient would poison the shared parameters: skip it.
            step = hub.push(rank, keys, grads if finite else None, rollout.num_steps)
            if finite:
                applied += 1
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value
            else:
                skipped += 1
            if rollout.episodes:  # one message for the rollout's episodes: the queue's cost
                # is per message, and short games end hundreds of episodes a second
                hub.report(
                    {"kind": "episodes", "rank": rank, "step": step,
                     "returns": [episode_return for _, episode_return, _ in rollout.episodes],
                     "lengths": [length for _, _, length in rollout.episodes]}
                )  # fmt: skip
            updates += 1
            if updates % cfg.log_every == 0:
                averaged = {key: value / applied for key, value in totals.items()}
                message = {"kind": "update", "rank": rank, "step": step, **averaged,
                           "skipped_updates": skipped}  # fmt: skip
                routing = take_routing(local) if local is not None else {}
                if routing:  # where the MoE layers sent this stretch's observations
                    message["moe"] = {name: r.as_lists() for name, r in routing.items()}
                hub.report(message)
                totals, applied, skipped = {}, 0, 0
            if after_rollout is not None:
                after_rollout(rollout)
    finally:
        envs.close()


def a3c_worker(rank: int, spec: WorkerSpec, hub: Hub | None = None) -> None:
    """A plain A3C worker: trains the shared model until the step budget is spent.

    Without ``hub``, a local worker process (``spec.model`` in shared memory, a private copy
    acts); with one (a Ray actor's), ``spec.model`` is the actor's own copy and acts itself.
    """
    if hub is None:
        with worker_process(rank, spec.queue):
            _train_a3c(rank, spec, copy.deepcopy(spec.model), SharedMemoryHub(spec, rank))
        return
    _train_a3c(rank, spec, spec.model, hub)


def _train_a3c(rank: int, spec: WorkerSpec, local: nn.Module, hub: Hub) -> None:
    params = list(local.parameters())
    pairs = params, hub.keys(local, params)
    state = local.initial_state(spec.cfg.envs_per_worker)
    run_worker(rank, spec, local.forward, lambda: pairs, state, local=local, hub=hub)
