"""The HyperNEAT agent: a policy whose weights a CPPN generates, scored by its episode return.

Stanley, D'Ambrosio & Gauci 2009 (HyperNEAT); Hausknecht et al. 2014 played Atari from the
screen with it. The policy is a *substrate*: neurons laid out in space — the observation's
elements (a vector on a line, a MinAtar grid per channel, an Atari or Labyrinth screen
downsampled to ``screen × screen``), a hidden grid and the actions on a line — and the weight of
every connection is the evolved CPPN queried at the two neurons' coordinates (CPPN outputs 0/1
for input -> hidden, 2/3 for hidden -> actions; :mod:`pathevo.modules.substrate`). The two weight
layers are :class:`pathevo.modules.cppn_layer.CPPNLinearLayer` s of one module each inside a
:class:`~pathevo.modules.library.PathLibrary`, so the same layers serve a PathNet path (``--mode
hybrid`` of ``runners/hyperneat.py``: a CPPN initialises a path's modules, then A3C fine-tunes
them).

No gradients: fitness is the mean return over ``episodes`` episodes with the greedy action, each
genome evaluated with its own seed (``seed + genome key``), so it parallelises over any map
backend (:mod:`pathevo.evolution.backends`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathevo.envs import make_env
from pathevo.modules.cppn import CPPNGraph
from pathevo.modules.cppn_layer import CPPNLinearLayer
from pathevo.modules.library import PathLibrary
from pathevo.modules.substrate import QUERY_SIZE

WEIGHT_LAYERS = 2
"""Input -> hidden and hidden -> actions: the CPPN has one (weight, bias) output pair each."""
CPPN_OUTPUTS = 2 * WEIGHT_LAYERS
CPPN_INPUTS = QUERY_SIZE


@dataclass
class HyperNEATConfig:
    """The substrate and expression of HyperNEAT policies."""

    hidden: tuple[int, ...] = (5, 5)
    """Shape of the hidden substrate layer: (n,) on a line or (h, w) on a grid."""
    screen: int = 16
    """Pixel observations (Atari, Labyrinth) are downsampled to screen × screen (gray)."""
    threshold: float = 0.2
    """|CPPN output| at or below this expresses no connection (HyperNEAT)."""
    max_weight: float = 3.0
    """Expressed weights are rescaled to at most this magnitude."""
    episodes: int = 3
    """Episodes per fitness evaluation (fitness: their mean return)."""
    max_episode_steps: int = 2_000
    """An evaluation episode is cut after this many steps (a stuck policy cannot hang a run)."""

    def __post_init__(self) -> None:
        if not self.hidden or len(self.hidden) > 2 or min(self.hidden) <= 0:
            raise ValueError(f"hyperneat.hidden must be (n,) or (h, w) positive, got {self.hidden}")
        if self.screen <= 0 or self.episodes <= 0 or self.max_episode_steps <= 0:
            raise ValueError("hyperneat.screen, episodes and max_episode_steps must be positive")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"hyperneat.threshold must be in [0, 1), got {self.threshold}")
        if self.max_weight <= 0:
            raise ValueError(f"hyperneat.max_weight must be positive, got {self.max_weight}")


def is_screen(obs_shape: tuple[int, ...]) -> bool:
    """Pixel observations (Atari, Labyrinth: [frames, 84, 84]) as opposed to small grids."""
    return len(obs_shape) == 3 and min(obs_shape[1:]) >= 36


def substrate_shape(obs_shape: tuple[int, ...], screen: int) -> tuple[int, ...]:
    """The input layer's neuron layout for an observation shape.

    Vectors lie on a line; MinAtar's [C, 10, 10] is a grid per channel; a screen becomes one
    ``screen × screen`` gray grid (the latest frame, area-averaged).
    """
    if len(obs_shape) == 1:
        return obs_shape
    if len(obs_shape) != 3:
        raise ValueError(f"unsupported observation shape {obs_shape}; need [D] or [C, H, W]")
    return (screen, screen) if is_screen(obs_shape) else obs_shape


def observation_features(obs: Any, obs_shape: tuple[int, ...], screen: int) -> torch.Tensor:
    """The substrate's input activations for one observation: [features] float32."""
    x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
    if is_screen(obs_shape):
        frame = x[-1:].unsqueeze(0) / 255.0  # [1, 1, H, W], the latest frame
        x = F.adaptive_avg_pool2d(frame, (screen, screen))
    return x.flatten()


class SubstratePolicy(nn.Module):
    """Observation -> hidden grid -> action scores, with CPPN-generated weights.

    ``library`` holds the two weight layers (one module each); ``express(graph)`` writes a
    CPPN's weights into them.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_actions: int,
        cfg: HyperNEATConfig,
    ) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.screen = cfg.screen
        self.input_shape = substrate_shape(self.obs_shape, cfg.screen)
        shapes = [self.input_shape, tuple(cfg.hidden), (num_actions,)]
        sizes = [math.prod(shape) for shape in shapes]
        self.library = PathLibrary(
            [
                CPPNLinearLayer(
                    1, sizes[index], sizes[index + 1], activation=index == 0,
                    threshold=cfg.threshold, max_weight=cfg.max_weight,
                    in_shape=shapes[index], out_shape=shapes[index + 1],
                )
                for index in range(WEIGHT_LAYERS)
            ],
            output_size=num_actions,
        )  # fmt: skip
        self.register_buffer("path", torch.zeros(WEIGHT_LAYERS, 1, dtype=torch.long))

    @torch.no_grad()
    def express(self, graph: CPPNGraph) -> None:
        """Write the weights ``graph`` generates into both layers."""
        for index, layer in enumerate(self.library.layers):
            layer.set_cppn(0, graph, output_pair=index)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # features: [B, inputs] -> action scores [B, A]
        return self.library(features, self.path)

    @torch.no_grad()
    def act(self, obs: Any) -> int:
        """The greedy action for one observation."""
        x = observation_features(obs, self.obs_shape, self.screen).unsqueeze(0)  # [1, inputs]
        return int(self(x.to(self.path.device)).argmax(1))

    def weight_matrices(self) -> list[torch.Tensor]:
        """The expressed weights of each layer ([out, in] each), for pictures."""
        return [layer.weights[0].detach().clone() for layer in self.library.layers]


@dataclass(frozen=True)
class FitnessTask:
    """Everything a worker needs to score a genome (picklable, sent with every map call)."""

    env_id: str
    obs_shape: tuple[int, ...]
    num_actions: int
    cfg: HyperNEATConfig
    seed: int
    generation: int = 0
    """Fresh episodes every generation: an elite that was lucky once is scored again."""
    device: str = "cpu"
    """Where the CPPNs paint the substrate's weights and the policy runs (cpu, cuda:N)."""


# One environment and one policy per worker process and env id: environments (an Atari ROM, a
# 3D maze) are far slower to build than to reset, and every genome of a generation reuses them.
_WORKER_CACHE: dict[tuple[str, str], tuple[gym.Env, SubstratePolicy]] = {}


def _worker_env_and_policy(task: FitnessTask) -> tuple[gym.Env, SubstratePolicy]:
    cached = _WORKER_CACHE.get((task.env_id, task.device))
    if cached is None:
        env = make_env(task.env_id, task.seed)
        policy = SubstratePolicy(task.obs_shape, task.num_actions, task.cfg).to(task.device)
        cached = _WORKER_CACHE[task.env_id, task.device] = (env, policy)
    return cached


def episode_returns(
    policy: SubstratePolicy, env: gym.Env, episodes: int, seed: int, max_steps: int
) -> list[float]:
    """Greedy returns of ``policy`` over ``episodes`` episodes seeded ``seed``, ``seed + 1``, …"""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done, steps = 0.0, False, 0
        while not done and steps < max_steps:
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs))
            total += float(reward)
            done = terminated or truncated
            steps += 1
        returns.append(total)
    return returns


def evaluate_graph(task: FitnessTask, graph: CPPNGraph, seed: int, episodes: int) -> list[float]:
    """Returns of the policy ``graph`` generates over ``episodes`` episodes from ``seed``."""
    env, policy = _worker_env_and_policy(task)
    policy.express(graph)
    return episode_returns(policy, env, episodes, seed, task.cfg.max_episode_steps)


def genome_fitness(task: FitnessTask, individual: Any) -> tuple[float]:
    """DEAP fitness of a CPPN genome: its policy's mean return over ``task.cfg.episodes``
    episodes seeded from the genome's key and the generation (:func:`episode_seed`).

    A top-level function of (task, genome) so every map backend can run it; the episodes'
    seeds depend on the genome, not on which worker evaluates it.
    """
    genome = individual.genome
    graph = CPPNGraph.from_genome(genome, CPPN_INPUTS, CPPN_OUTPUTS)
    seed = episode_seed(task.seed, int(genome.key), task.generation)
    returns = evaluate_graph(task, graph, seed, task.cfg.episodes)
    return (float(np.mean(returns)),)


def episode_seed(seed: int, key: int, generation: int) -> int:
    """The first episode seed of genome ``key`` in ``generation`` (its episodes count up)."""
    return seed + 1_000 * key + 1_000_003 * generation


def clear_worker_cache() -> None:
    """Close the cached environments (the runner's process calls it when it is done)."""
    for env, _ in _WORKER_CACHE.values():
        env.close()
    _WORKER_CACHE.clear()
