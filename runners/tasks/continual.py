"""The two task families of runners/continual.py: what is built, trained and evaluated.

Binary image tasks (``digits/3v5``, ``fashion/coat-v-shirt``: :mod:`pathevo.envs.digits`) train
paths with the serial binary tournament and are evaluated on a held-out batch
(:mod:`pathevo.agents.continual`); RL env ids of one family train PathNet-A3C phases
(:class:`pathevo.agents.phase.Phase`) and are evaluated by seeded episodes. Both answer the same
questions: ``build(seed)`` (a library with every task's head), ``train(model, step)``,
``evaluate(model, j, path)`` (one entry of R) and ``probe(model, j, path)`` (outputs on a fixed
batch, to show zero forgetting bitwise). The settings they read are described here
(:class:`ImageSettings`, :class:`GamesSettings`), so this module does not import the recipe that
uses it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.continual import (
    PathClassifier,
    accuracy,
    eval_outputs,
    fixed_noisy_batch,
    observation_batch,
    policy_return,
    split_task,
)
from pathevo.agents.curves import final_mean_return
from pathevo.agents.images import usage_image
from pathevo.agents.pathnet_a3c import common_input_shape
from pathevo.agents.phase import Phase, env_spaces, new_population
from pathevo.agents.phase_reporters import make_progress
from pathevo.agents.processes import keep_freed_memory
from pathevo.agents.registry import AgentSettings, LayerSettings, get_agent, layer_kind
from pathevo.agents.supervised import PathTrainer, SupervisedConfig, train_fixed_path
from pathevo.envs.digits import is_image_task, make_binary_task
from pathevo.envs.registry import FAMILIES, list_env_ids
from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.operators import module_usage
from pathevo.evolution.toolbox import PathGenome, make_toolbox
from pathevo.evolution.tournament import SearchState, evolve
from pathevo.modules.library import linear_library
from pathevo.runners.plumbing import run_dir as rd


class Settings(Protocol):
    """What both families read of the run's settings (runners/continual.py's config)."""

    tasks: tuple[str, ...]
    seed: int
    progress: bool


class ImageSettings(Settings, LayerSettings, Protocol):
    """What the binary image family reads (and its last layer kind: ``moe``, ``hyper``)."""

    data_dir: str | None
    resolution: int
    held_out: float
    hidden: int
    last_layer: str
    library_kind: str
    evo: EvoConfig
    train: SupervisedConfig
    max_generations: int
    threshold: float
    image_every: int


class GamesSettings(Settings, AgentSettings, Protocol):
    """What the RL family reads (and its agent's builder: ``a3c``, ``pathnet``, …)."""

    agent: str
    steps: int
    workers: int
    probe_size: int
    eval_episodes: int
    eval_max_steps: int
    checkpoint_every: int
    checkpoint_minutes: float
    backend: str
    ray_address: str | None


@dataclass
class Step:
    """One task of one condition, as a family's ``train`` sees it."""

    index: int
    condition: str
    sizes: list[int]
    """M of each layer of the model's library (after any growth, layers may differ)."""
    rng: random.Random
    run_path: Path
    progress: Progress
    resume: dict[str, Any] | None = None
    """The task's mid-task checkpoint (RL: optimiser, steps, population, log) to go on from."""
    save: Callable[[dict[str, Any]], None] | None = None
    """Stores a mid-task checkpoint (RL phases: every --checkpoint-every steps, and on Ctrl-C)."""

    def writer(self, start: int = 0) -> SummaryWriter:
        """The task's TensorBoard writer, ``run_path/<condition>/task<index>``, opened at
        ``start`` (:func:`pathevo.runners.plumbing.run_dir.segment_writer`)."""
        return rd.segment_writer(self.run_path, f"{self.condition}/task{self.index}", start)


@dataclass
class Images:
    """Binary image tasks: the serial binary tournament, R = held-out accuracy."""

    cfg: ImageSettings
    names: list[str]
    """The tasks' canonical ids (``digits/3v5``, ``fashion/trouser-v-sneaker``), their heads'
    names."""
    train_sets: list[Any]
    probes: list[tuple[torch.Tensor, torch.Tensor]]
    """Per task: the fixed noisy held-out batch x [n, D], y [n]."""

    @classmethod
    def load(cls, cfg: ImageSettings) -> Images:
        """Every task's examples (missing IDX files: a one-line error before anything runs)."""
        train_sets, probes, names = [], [], []
        for index, name in enumerate(cfg.tasks):
            task = make_binary_task(name, cfg.data_dir, cfg.resolution)
            names.append(task.name)
            train, test = split_task(task, cfg.held_out, cfg.seed * 100 + index)
            train_sets.append(train)
            probes.append(fixed_noisy_batch(test, cfg.train.noise, cfg.seed * 100 + index))
        return cls(cfg, names, train_sets, probes)

    @property
    def layers(self) -> int:
        return self.cfg.evo.layers

    @property
    def active(self) -> int:
        return self.cfg.evo.active

    def build(self, seed: int) -> PathClassifier:
        torch.manual_seed(seed)
        cfg, evo = self.cfg, self.cfg.evo
        last = layer_kind(cfg.library_kind)(cfg)
        size = self.train_sets[0].input_size
        library = linear_library(size, cfg.hidden, evo.layers, evo.modules, cfg.last_layer, last)
        model = PathClassifier(library)
        for name in self.names:
            model.add_task(name)
        return model

    def train(self, model: nn.Module, step: Step) -> dict[str, Any]:
        cfg, index, condition, progress = self.cfg, step.index, step.condition, step.progress
        name, sizes, evo = self.names[index], step.sizes, cfg.evo
        writer = step.writer()  # an image task interrupted midway starts again: 0
        trainer = PathTrainer(
            model.library, model.heads[name], self.train_sets[index], cfg.train,
            evo.layers, evo.active,
        )  # fmt: skip
        toolbox = make_toolbox(evo, rng=step.rng, sizes=sizes)
        toolbox.register("evaluate", trainer)
        toolbox.register("evaluate_together", trainer.evaluate_together)  # --evo.tournaments-…
        if evo.tournaments_at_once:
            keep_freed_memory()  # batched steps: MB-sized tensors, freed and made again
        tag = f"{condition}/task{index}"
        bar = progress.add_task(f"{tag} {name}", total=cfg.max_generations, best=0.0)

        def log(*, state: SearchState, outcome: Any) -> None:
            gen = state.generation
            writer.add_scalar("evolution/fitness_best", state.best_fitness, gen)
            writer.add_scalar("charts/accuracy", outcome.winner_fitness, gen)
            last = state.solved_at is not None or gen == cfg.max_generations
            if gen % cfg.image_every == 0 or last:  # and the final paths of every task
                usage = module_usage(state.population, evo.layers, evo.active, sizes)
                frozen = model.library.frozen_mask()
                writer.add_image("evolution/paths", usage_image(usage, frozen), gen)
            progress.update(bar, completed=gen, best=state.best_fitness)

        if condition == "finetune":
            fixed = [m for _ in range(evo.layers) for m in range(evo.active)]
            search = SearchState(population=[PathGenome(fixed)])
            train_fixed_path(search, trainer, cfg.max_generations, cfg.threshold, log)
        else:
            search = SearchState(population=toolbox.population(n=evo.population))
            evolve(search, toolbox, cfg.max_generations, cfg.threshold, log)
        writer.close()
        return {
            "genome": search.best,
            "generations": search.solved_at or cfg.max_generations,
            "solved": search.solved_at is not None,
        }

    def probe(self, model: nn.Module, index: int, path: torch.Tensor) -> torch.Tensor:
        return eval_outputs(model, self.probes[index][0], path, self.names[index])

    def evaluate(self, model: nn.Module, index: int, path: torch.Tensor) -> float:
        return accuracy(self.probe(model, index, path), self.probes[index][1])

    def progress(self, console: Console) -> Progress:
        return Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("best {task.fields[best]:.3f}"), TimeElapsedColumn(),
            console=console, disable=not self.cfg.progress,
        )  # fmt: skip


@dataclass
class Games:
    """RL env ids of one family: PathNet-A3C phases, R = mean return of seeded episodes."""

    cfg: GamesSettings
    names: list[str]
    shape: tuple[int, ...]
    actions: list[int]
    probes: list[torch.Tensor]
    """Per task: a fixed batch of observations [probe_size, ...]."""

    @classmethod
    def load(cls, cfg: GamesSettings) -> Games:
        spaces = [env_spaces(env_id, cfg.seed) for env_id in cfg.tasks]  # bad ids fail here
        families = {env_id: env_family(env_id) for env_id in cfg.tasks}
        if len(set(families.values())) > 1:
            listed = ", ".join(f"{env_id} ({family})" for env_id, family in families.items())
            raise ValueError(f"--tasks mixes environment families: {listed}")
        shape = common_input_shape(*(obs_shape for obs_shape, _ in spaces))
        probes = [observation_batch(e, cfg.probe_size, cfg.seed + 7) for e in cfg.tasks]
        return cls(cfg, list(cfg.tasks), shape, [n for _, n in spaces], probes)

    @property
    def layers(self) -> int:
        return self.cfg.pathnet.layers

    @property
    def active(self) -> int:
        return self.cfg.pathnet.active

    def build(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = get_agent(self.cfg.agent, evolves_paths=True).build(self.cfg, self.shape, 0)
        for name, actions in zip(self.names, self.actions, strict=True):
            model.add_task(name, actions)
        return model

    def train(self, model: nn.Module, step: Step) -> dict[str, Any]:
        cfg, env_id, condition = self.cfg, self.names[step.index], step.condition
        pathnet = cfg.pathnet
        seed = step.rng.randrange(2**31)
        if condition == "finetune":
            fixed = [m for _ in range(pathnet.layers) for m in range(pathnet.active)]
            population = SharedPopulation.create([fixed] * cfg.workers)
        else:
            population = new_population(pathnet, cfg.workers, seed, step.sizes)
        # Set up after any growth: the grown layers' parameters are new to shared memory.
        phase = Phase.create(model, cfg.a3c, cfg.workers, seed, population=population,
                             pathnet=pathnet)  # fmt: skip
        start = 0
        if step.resume is not None:  # inside this task: the model was restored by the runner
            phase.restore(step.resume)
            start = int(phase.steps.sum()) + 1
        writer = step.writer(start)

        def save() -> None:
            if step.save is not None:
                sizes = model.library.modules_per_layer
                step.save({"model": {"state": model.state_dict(), "sizes": sizes},
                           **phase.state()})  # fmt: skip

        reporters = phase.reporters(
            writer=writer, name=f"{condition}/task{step.index}", progress=step.progress,
            checkpoint=save, checkpoint_every=cfg.checkpoint_every,
            checkpoint_minutes=cfg.checkpoint_minutes,
        )  # fmt: skip
        phase.run(
            get_agent(cfg.agent).worker, env_id=env_id, budget=cfg.steps, reporters=reporters,
            evolve=condition != "finetune", backend=cfg.backend, ray_address=cfg.ray_address,
        )  # fmt: skip
        writer.close()
        return {
            "genome": population.genomes[population.best()].tolist(),
            "steps": int(phase.steps.sum()),
            "final_mean_return": final_mean_return(phase.log.episodes),
            "seconds": phase.log.seconds,
        }

    def probe(self, model: nn.Module, index: int, path: torch.Tensor) -> torch.Tensor:
        return eval_outputs(model, self.probes[index], path, self.names[index])

    def evaluate(self, model: nn.Module, index: int, path: torch.Tensor) -> float:
        cfg = self.cfg
        seed = cfg.seed + 10_000 + 100 * index
        return policy_return(
            model, self.names[index], path, self.names[index], cfg.eval_episodes, seed,
            cfg.eval_max_steps,
        )  # fmt: skip

    def progress(self, console: Console) -> Progress:
        return make_progress(console, self.cfg.progress)


def env_family(env_id: str) -> str:
    """The registry family (minatar, labyrinth, ale, control) an id is listed in."""
    for family in FAMILIES:
        try:
            if env_id in list_env_ids(family):
                return family
        except ImportError:
            continue
    return "gymnasium"


def load_family(cfg: ImageSettings | GamesSettings) -> Images | Games:
    """The family of ``cfg.tasks`` (one family: runners/continual.py's config checks it)."""
    return Images.load(cfg) if is_image_task(cfg.tasks[0]) else Games.load(cfg)
