"""Agents by name: the one place runners read their ``--agent`` choices from.

Like the environment registry, a name maps to everything a runner needs to train the agent:
how to build its shared network from the run's settings (the ``a3c``, ``pathnet``, ``moe`` or
``hyperneat`` config sections), which worker function trains (or scores) it, which trainer
drives it — A3C workers, or neuroevolution without gradients — and whether it evolves paths
through a module library (only those can transfer by freezing a path). What differs between
path-evolving and other agents — the network for one task, a population, how many workers —
the record answers (:meth:`Agent.build_for_task`, :meth:`Agent.population`,
:meth:`Agent.check_workers`), so runners neither test names nor kinds. An agent that trains with
other settings than the runners' defaults carries them (:attr:`Agent.defaults`): a runner starts
from them (:meth:`Agent.configure`), so any agent swaps in with ``--agent`` alone. New agents
(neuroevolution, pruned heads, …) call :func:`register_agent`. Kinds of a path
library's last layer (linear modules, an MoE layer, …) are registered the same way in
:data:`LAYER_KINDS`.

Example:
    >>> get_agent("pathnet").evolves_paths
    True
    >>> get_agent("pathnet_moe")
    Traceback (most recent call last):
    ...
    ValueError: unknown agent 'pathnet_moe'; did you mean: pathnet-moe, pathnet?
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from torch import nn

from pathevo.agents.a3c import A3CConfig, A3CNet, a3c_worker
from pathevo.agents.hyper_agents import HyperConfig
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.neuroevolution import SubstratePolicy, genome_fitness
from pathevo.agents.pathnet_a3c import PathNetA3C, PathNetA3CConfig, pathnet_library, pathnet_worker
from pathevo.agents.phase import new_population
from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.modules.actor_critic import HeadFactory
from pathevo.modules.cppn_layer import cppn_layer_factory
from pathevo.modules.layers import LinearModuleLayer
from pathevo.modules.library import LayerFactory
from pathevo.modules.pruning import pruned_head_factory


class LayerSettings(Protocol):
    """The config sections a layer kind reads."""

    moe: MoEConfig
    hyper: HyperConfig


class AgentSettings(LayerSettings, Protocol):
    """The config sections an agent builder reads (every RL runner's config has them)."""

    a3c: A3CConfig
    pathnet: PathNetA3CConfig


Builder = Callable[[AgentSettings, tuple[int, ...], int], nn.Module]
"""``build(settings, obs_shape, num_actions)``: an agent's shared network."""

Settings = TypeVar("Settings")


@dataclass(frozen=True)
class Agent:
    """How to build and train one kind of agent."""

    name: str
    description: str
    build: Builder
    """The shared network from the run's settings. Path agents return a
    :class:`~pathevo.agents.pathnet_a3c.PathNetA3C` without tasks (runners add each task's head)."""
    worker: Callable[..., Any]
    """The A3C worker process function (``a3c_worker`` or ``pathnet_worker``), or for
    neuroevolution the fitness function ``(task, genome) -> (fitness,)`` the map backend runs."""
    evolves_paths: bool
    """A population of paths through a module library (PathNet): tournaments, transfer."""
    trainer: str = "a3c"
    """Which runners can train it: ``"a3c"`` (A3C workers) or ``"neuroevolution"``."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """The settings this agent trains with where the runners' own defaults do not suit it, by
    config field path (``{"a3c.optimizer": "adam"}``); runners apply them with
    :meth:`configure`, and a flag the user gives wins."""

    def configure(self, settings: Settings, given: Collection[str] = ()) -> Settings:
        """``settings`` (a runner's config) with :attr:`defaults` in every field whose path is
        not in ``given`` (the ones a user set); validated as any config is on construction.
        """
        for path, value in self.defaults.items():
            if path not in given:
                settings = _with_field(settings, path.split("."), value, path)
        return settings

    def defaults_text(self) -> str:
        """:attr:`defaults` as ``a3c.lr=0.001, moe.k=4`` (empty if it has none), for help texts."""
        return ", ".join(f"{path}={value}" for path, value in self.defaults.items())

    def build_for_task(
        self, settings: AgentSettings, obs_shape: tuple[int, ...], num_actions: int, task: str
    ) -> nn.Module:
        """The shared network for one task: a path agent's library gets ``task``'s head (the
        others are built with theirs)."""
        model = self.build(settings, obs_shape, num_actions)
        if self.evolves_paths:
            model.add_task(task, num_actions)
        return model

    def population(
        self, pathnet: PathNetA3CConfig, workers: int, seed: int,
        sizes: Sequence[int] | None = None,
    ) -> SharedPopulation | None:  # fmt: skip
        """A path agent's population: one random path genome per worker, in shared memory
        (:func:`pathevo.agents.phase.new_population`); None for agents without paths."""
        return new_population(pathnet, workers, seed, sizes) if self.evolves_paths else None

    def check_workers(self, workers: int) -> None:
        """A one-line ValueError if ``workers`` cannot train the agent: a path agent's
        tournaments need at least two genomes, one per worker."""
        if self.evolves_paths and workers < 2:
            raise ValueError(f"{self.name} needs at least 2 workers (one path genome each)")


AGENTS: dict[str, Agent] = {}


def register_agent(agent: Agent) -> Agent:
    """Add ``agent`` to the registry (replacing one of the same name)."""
    AGENTS[agent.name] = agent
    return agent


def agent_names(*, evolves_paths: bool | None = None, trainer: str | None = None) -> list[str]:
    """Registered names, sorted; only path agents (or only others) if ``evolves_paths`` is set,
    only those ``trainer`` drives if it is set."""
    return sorted(
        name
        for name, agent in AGENTS.items()
        if (evolves_paths is None or agent.evolves_paths == evolves_paths)
        and (trainer is None or agent.trainer == trainer)
    )


def get_agent(name: str, *, evolves_paths: bool | None = None, trainer: str | None = None) -> Agent:
    """The agent called ``name``; a one-line ValueError with close names if there is none."""
    known = agent_names(evolves_paths=evolves_paths, trainer=trainer)
    if name in known:
        return AGENTS[name]
    what = "path-evolving agent" if evolves_paths else "agent"
    if trainer == "neuroevolution":
        what = "neuroevolution agent"
    raise ValueError(_unknown(what, name, known))


LAYER_KINDS: dict[str, Callable[[LayerSettings], LayerFactory]] = {
    "linear": lambda s: LinearModuleLayer,
    "moe": lambda s: s.moe.layer_factory(),
    "hyper": lambda s: s.hyper.layer_factory(),
    "cppn": lambda s: cppn_layer_factory(),
}
"""Kinds of a path library's last layer, by name: ``kind(settings)`` -> the layer factory."""


def layer_kind(name: str) -> Callable[[LayerSettings], LayerFactory]:
    """The last-layer kind ``name``; a one-line ValueError with close names if there is none."""
    if name not in LAYER_KINDS:
        raise ValueError(_unknown("layer kind", name, sorted(LAYER_KINDS)))
    return LAYER_KINDS[name]


def _with_field(settings: Settings, names: list[str], value: Any, path: str) -> Settings:
    """A copy of the config ``settings`` whose field ``names`` (``["a3c", "lr"]``, the rest of
    ``path``) is ``value``."""
    name, *rest = names
    fields = (
        {f.name for f in dataclasses.fields(settings)} if dataclasses.is_dataclass(settings) else ()
    )
    if name not in fields:
        raise ValueError(f"agent default {path!r}: {type(settings).__name__} has no field {name!r}")
    inner = _with_field(getattr(settings, name), rest, value, path) if rest else value
    return dataclasses.replace(settings, **{name: inner})  # type: ignore[type-var]


def _unknown(what: str, name: str, known: list[str]) -> str:
    lowered = {known_name.lower(): known_name for known_name in known}
    close = [lowered[m] for m in difflib.get_close_matches(name.lower(), lowered, n=3, cutoff=0.5)]
    hint = f"did you mean: {', '.join(close)}?" if close else f"choose one of {', '.join(known)}"
    return f"unknown {what} {name!r}; {hint}"


def _substrate_policy(s: Any, obs_shape: tuple[int, ...], num_actions: int) -> nn.Module:
    """The HyperNEAT policy (``s.hyperneat``: its substrate and expression)."""
    return SubstratePolicy(obs_shape, num_actions, s.hyperneat)


def _standard(head: Callable[[AgentSettings], HeadFactory]) -> Builder:
    def build(s: AgentSettings, obs_shape: tuple[int, ...], num_actions: int) -> nn.Module:
        a3c = s.a3c
        return A3CNet(obs_shape, num_actions, a3c.hidden, a3c.lstm, a3c.precision, head(s))

    return build


def _path_library(last_layer: str) -> Builder:
    def build(s: AgentSettings, obs_shape: tuple[int, ...], num_actions: int) -> nn.Module:
        del num_actions  # each task's head is added by the runner
        library = pathnet_library(obs_shape, s.pathnet, LAYER_KINDS[last_layer](s))
        a3c = s.a3c
        return PathNetA3C(library, obs_shape, a3c.lstm, a3c.precision, a3c.head_factory())

    return build


MOE_DEFAULTS = {
    "a3c.optimizer": "adam", "a3c.lr": 2e-3, "a3c.envs_per_worker": 4, "a3c.t_max": 5,
}  # fmt: skip
"""Under the paper's RMSProp (lr 7e-4, ε 0.1 inside the root) the MoE head learned CartPole-v1
late and then its policy collapsed (a 20-episode mean of 195 first at 142k steps, final 239;
plain A3C: 75k-80k). With Adam at 2e-3 it did at 61k, 42k and 47k steps (seeds 0-2), at 0.47
times plain A3C's steps per second: the head's loss pass costs 4 times the plain head's. With 4
environments per worker (t_max 5 keeps 20 steps per update) 0.6 times, and 195 at 85k and 80k."""

PATHNET_MOE_DEFAULTS = {"a3c.lr": 2e-3, "a3c.envs_per_worker": 4, "a3c.t_max": 5}
"""An MoE last layer's output is about a tenth of the linear layer's it replaces (the gate
averages two experts of two default-initialised layers), so the heads above it learn slowly: at
lr 7e-4 it first reached 195 on CartPole-v1 at 300k steps, at 2e-3 at 123k, 105k and 138k
(seeds 0-2; Adam did not learn it). Its acting pass on one observation costs about 3 times
plain PathNet's, so 4 environments per worker share each (t_max 5 keeps 20 steps per update):
195 at 114k, 78k and 171k steps at 0.63 times plain A3C's steps per second (1 env: 0.31)."""

PATHNET_HYPER_DEFAULTS = {"a3c.envs_per_worker": 4, "a3c.t_max": 5}
"""It learns CartPole-v1 at the runner's defaults (195 at 81k and 89k steps), but generating its
last layer's kernels makes acting on one observation cost about twice plain PathNet's: 0.45
times plain A3C's steps per second. With 4 environments per worker (t_max 5 keeps 20 steps per
update) 0.95 times, and 195 at 163k, 54k and 94k steps (seeds 0-2)."""

for _agent in (
    Agent("a3c", "A3C with the standard network (Mnih et al. 2016)",
          _standard(lambda s: s.a3c.head_factory()), a3c_worker, False),
    Agent("pathnet", "PathNet-A3C: evolved paths through a module library",
          _path_library("linear"), pathnet_worker, True),
    Agent("a3c-pruned", "A3C with lottery-ticket masks on its policy/value head (Frankle & "
          "Carbin 2019)", _standard(lambda s: s.a3c.head_factory(pruned_head_factory())),
          a3c_worker, False),
    Agent("moe", "A3C whose policy/value head is a sparsely-gated mixture of experts",
          _standard(lambda s: s.a3c.head_factory(s.moe.head_factory())), a3c_worker, False,
          defaults=MOE_DEFAULTS),
    Agent("pathnet-moe", "PathNet-A3C whose last library layer is a mixture of experts",
          _path_library("moe"), pathnet_worker, True, defaults=PATHNET_MOE_DEFAULTS),
    Agent("pathnet-hyper", "PathNet-A3C whose last layer's kernels a static hypernetwork "
          "generates (Ha et al. 2016)", _path_library("hyper"), pathnet_worker, True,
          defaults=PATHNET_HYPER_DEFAULTS),
    Agent("hyperneat", "HyperNEAT: NEAT-evolved CPPNs generate a policy's weights, no gradients "
          "(Stanley et al. 2009)", _substrate_policy, genome_fitness, False, "neuroevolution"),
):  # fmt: skip
    register_agent(_agent)
