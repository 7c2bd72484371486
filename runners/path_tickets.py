"""Lottery tickets inside a PathNet path: how far a frozen path prunes, and whether it transfers.

Iterative magnitude pruning with rewinding (Frankle & Carbin 2019, arXiv:1803.03635) applied to
the modules of the path PathNet evolved for task A (Fernando et al. 2017, arXiv:1701.08734, the
binary image tasks of its first experiment), and then PathNet transfer from that pruned, frozen
path to task B. For every pair (A, B) and seed (a *unit*):

1. PathNet evolution on A from a fresh library (θ0): its best path is A's path (``evolved``).
2. IMP on that path's modules (every module of the path, each pruned on its own, ``--prune-
   fraction`` of its remaining weights a round): level 0 rewinds the path's modules and the head
   to θ0 and retrains the fixed path on A (until the threshold or ``--fixed-generations``, at
   most ``--max-generations`` generations of two T-minibatch trainings: fine-tuning's
   compute); each level r ≥ 1 prunes the
   latest level's trained weights, rewinds the survivors to θ0 and retrains. A's held-out
   accuracy and generations at every level say how sparse the path can be while A keeps its
   accuracy.
3. PathNet on B with each of these frozen paths (the modules off the path re-initialised, a
   fresh population and head; the same draws for every condition) and from scratch: B's
   generations to the threshold and held-out accuracy, pruned against unpruned frozen paths.

Run ``pathevo path_tickets --help`` for the options; docs/lottery.md has the results.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from pathevo.agents.supervised import SupervisedConfig, train_fixed_path, train_path
from pathevo.envs.digits import BinaryTask
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.operators import genome_to_path
from pathevo.evolution.toolbox import PathGenome, make_toolbox
from pathevo.evolution.tournament import SearchState, evolve
from pathevo.evolution.transfer import begin_transfer
from pathevo.modules import pruning
from pathevo.modules.library import PathLibrary
from pathevo.runners.binary_digits import (
    BinaryDigitsConfig,
    DatasetName,
    choose_pairs,
    fresh_library,
    held_out_accuracy,
    load_tasks,
)
from pathevo.runners.figures.path_tickets import log_unit, mean_entry, plot_levels, print_table
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli
from pathevo.runners.plumbing.stats import mean_interval


@dataclass
class PathTicketsConfig:
    """IMP on A's evolved path, then PathNet transfer to B from each pruned frozen path."""

    seed: int = 0
    """First seed; unit seeds are seed, seed + 1, … (``--repeats``); random pairs come from it."""
    repeats: int = 2
    """Seeds per pair."""
    pairs: int = 3
    """Random (A, B) pairs drawn from --dataset (unless --tasks)."""
    dataset: DatasetName = "digits"
    """Data set of the random pairs (digits: scikit-learn's 8x8 digits, built in)."""
    tasks: tuple[str, ...] = ()
    """Explicit pairs 'A:B', such as 'digits/3v5:digits/1v7'."""
    rounds: int = 4
    """R: pruning rounds after level 0."""
    prune_fraction: float = 0.5
    """Fraction of each path module's remaining weights pruned a round (sparsity 1-(1-p)^r)."""
    threshold: float = 0.99
    """Training accuracy at which a task counts as learned (binary_digits' fast preset)."""
    max_generations: int = 300
    """Cap of every evolution and retraining (a censored phase counts this many)."""
    fixed_generations: int = 0
    """The CIFAR/SVHN protocol of binary_digits: every evolution and retraining runs at least
    this many generations (past the threshold), so the accuracies compare at equal training;
    with --max-generations the same, exactly this many. 0: each stops at the threshold."""
    hidden: int = 20
    """Units per linear module."""
    resolution: int | None = 28
    """Images are resized to this side (None keeps their own)."""
    evo: EvoConfig = field(default_factory=EvoConfig)
    train: SupervisedConfig = field(default_factory=SupervisedConfig)
    data_dir: str | None = None
    """Directory of the IDX data sets (see ``pathevo binary_digits --help``)."""
    run_dir: str | None = None
    """Where to write the run (default: runs/path_tickets-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory: finished units are kept (other flags are ignored)."""

    def __post_init__(self) -> None:
        if min(self.repeats, self.pairs, self.rounds, self.max_generations, self.hidden) <= 0:
            raise ValueError("repeats, pairs, rounds, max_generations and hidden must be positive")
        if not 0 <= self.fixed_generations <= self.max_generations:
            raise ValueError(
                f"fixed_generations must lie in [0, max_generations={self.max_generations}], "
                f"got {self.fixed_generations}"
            )
        if not 0.0 < self.prune_fraction < 1.0:
            raise ValueError(f"prune_fraction must lie in (0, 1), got {self.prune_fraction}")
        self.digits()  # the pairs, threshold and library settings are valid

    def digits(self, seed: int | None = None) -> BinaryDigitsConfig:
        """The binary-digit experiment's config these settings make (its library, tasks, pairs)."""
        return BinaryDigitsConfig(
            seed=self.seed if seed is None else seed, pairs=self.pairs, dataset=self.dataset,
            tasks=self.tasks, threshold=self.threshold, max_generations=self.max_generations,
            hidden=self.hidden, resolution=self.resolution, evo=self.evo, train=self.train,
            data_dir=self.data_dir, progress=False,
        )  # fmt: skip

    def levels(self) -> list[str]:
        """The frozen-path conditions: the evolved path, then IMP levels 0 … R."""
        return ["evolved"] + [f"r{r}" for r in range(self.rounds + 1)]


@dataclass
class Unit:
    """One pair and seed: its tasks, data and the library settings."""

    cfg: PathTicketsConfig
    task_a: BinaryTask
    task_b: BinaryTask
    held_a: BinaryTask
    held_b: BinaryTask
    seed: int

    def library(self) -> PathLibrary:
        cpu = torch.device("cpu")
        return fresh_library(self.cfg.digits(self.seed), self.task_a.input_size, cpu)

    def head(self) -> nn.Linear:
        return nn.Linear(self.cfg.hidden, 2)

    def path(self, genome: list[int]) -> torch.Tensor:
        return genome_to_path(genome, self.cfg.evo.layers, self.cfg.evo.active)  # [L, N]


@dataclass
class FixedPathTrainer:
    """``genome -> (training accuracy,)`` of the one fixed path, pruned weights kept at 0."""

    library: PathLibrary
    head: nn.Module
    path: torch.Tensor
    task: BinaryTask
    cfg: SupervisedConfig
    targets: list[pruning.PruneTarget]

    def __call__(self, genome: list[int]) -> tuple[float]:
        del genome  # always the fixed path
        return (train_path(self.library, self.head, self.path, self.task, self.cfg, self.targets),)


def evolve_on(unit: Unit, library: PathLibrary, task: BinaryTask, held: BinaryTask,
              seed: int) -> tuple[SearchState, float, dict[str, torch.Tensor]]:  # fmt: skip
    """PathNet evolution of a fresh population and head on ``task``; the search state, the
    held-out accuracy of its best path and the head's initial state."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    head = unit.head()
    initial_head = copy.deepcopy(head.state_dict())
    trainer_cfg = unit.cfg.train
    toolbox = make_toolbox(unit.cfg.evo, map, rng)
    toolbox.register("evaluate", lambda genome: (train_path(
        library, head, unit.path(genome), task, trainer_cfg),))  # fmt: skip
    search = SearchState(population=toolbox.population(n=unit.cfg.evo.population))
    cfg = unit.cfg
    evolve(search, toolbox, cfg.max_generations, cfg.threshold, None, cfg.fixed_generations,
           tournaments_at_once=0)  # fmt: skip
    return search, held_out_accuracy(library, head, unit.path(search.best), held), initial_head


def path_parameters(library: PathLibrary, path: torch.Tensor) -> list[torch.Tensor]:
    """Every parameter of ``path``'s modules ([L, N]; weights and biases, each distinct module
    once, in layer and module order): the views the library computes with."""
    return [getattr(layer, kind)[m] for layer, ids in zip(library.layers, path.tolist(),
                                                          strict=True)
            for m in sorted(set(ids)) for kind in layer.parameter_kinds]  # fmt: skip


def path_snapshot(library: PathLibrary, path: torch.Tensor) -> list[torch.Tensor]:
    """Copies of :func:`path_parameters` (pruned weights are 0 in them)."""
    return [parameter.detach().clone() for parameter in path_parameters(library, path)]


@torch.no_grad()
def load_path(library: PathLibrary, path: torch.Tensor, values: list[torch.Tensor]) -> None:
    """Write :func:`path_snapshot`'s ``values`` into ``path``'s modules."""
    for parameter, value in zip(path_parameters(library, path), values, strict=True):
        parameter.copy_(value)


def transferred(library: PathLibrary, after_a: dict[str, Any], path: torch.Tensor,
                values: list[torch.Tensor], task_a: str) -> None:  # fmt: skip
    """Make ``library`` B's start: A's final library with ``values`` (:func:`path_snapshot` of
    a level: weights with pruned entries 0, and biases) on A's path, that path frozen and every
    other module re-initialised."""
    library.load_state_dict(after_a)
    load_path(library, path, values)
    begin_transfer(library, path, task_a)


def run_unit(unit: Unit, say: Callable[[str], None]) -> dict[str, Any]:
    """Steps 1-3 of the module docstring for one pair and seed; the unit's result."""
    cfg, seed = unit.cfg, unit.seed
    torch.manual_seed(seed)
    library = unit.library()
    initial = copy.deepcopy(library)  # θ0
    search_a, accuracy_a, head0 = evolve_on(unit, library, unit.task_a, unit.held_a,
                                            seed * 100 + 1)  # fmt: skip
    best_a, path_a = search_a.best, unit.path(search_a.best)
    after_a = copy.deepcopy(library.state_dict())
    result: dict[str, Any] = {
        "task_a": unit.task_a.name, "task_b": unit.task_b.name, "seed": seed, "best_a": best_a,
        "a_generations": search_a.solved_at or cfg.max_generations,
        "levels": {"evolved": {"sparsity": 0.0, "a_accuracy": accuracy_a}},
    }  # fmt: skip
    say(f"A {unit.task_a.name}: {result['a_generations']} generations, {accuracy_a:.3f} held out")

    theta0 = path_snapshot(initial, path_a)
    ticket = copy.deepcopy(library)
    targets = pruning.library_targets(ticket, path_a)
    pruning.attach_masks(targets)
    snapshots = {"evolved": path_snapshot(ticket, path_a)}
    for r in range(cfg.rounds + 1):
        if r:  # ranked by the latest level's trained weights
            pruning.magnitude_prune(targets, cfg.prune_fraction, "layer")
        load_path(ticket, path_a, theta0)  # weights and biases back to θ0,
        pruning.set_masks(targets, pruning.masks(targets))  # the pruned weights to 0
        head = unit.head()
        head.load_state_dict(head0)  # A's head at θ0
        trainer = FixedPathTrainer(ticket, head, path_a, unit.task_a, cfg.train, targets)
        torch.manual_seed(seed * 100 + 3)  # the same minibatches at every level
        search = train_fixed_path(SearchState(population=[PathGenome(best_a)]), trainer,
                                  cfg.max_generations, cfg.threshold, None,
                                  cfg.fixed_generations)  # fmt: skip
        level = {"sparsity": pruning.sparsity(targets),
                 "a_generations": search.solved_at or cfg.max_generations,
                 "a_solved": search.solved_at is not None,
                 "a_accuracy": held_out_accuracy(ticket, head, path_a, unit.held_a)}  # fmt: skip
        result["levels"][f"r{r}"] = level
        snapshots[f"r{r}"] = path_snapshot(ticket, path_a)
        say(f"  r{r}: {100 * level['sparsity']:.1f}% pruned, A {level['a_accuracy']:.3f}")

    for condition in ["scratch", *cfg.levels()]:
        torch.manual_seed(seed * 100 + 4)  # the same re-initialised modules for every condition
        library = unit.library()
        if condition != "scratch":
            transferred(library, after_a, path_a, snapshots[condition], unit.task_a.name)
        search_b, accuracy_b, _ = evolve_on(unit, library, unit.task_b, unit.held_b,
                                            seed * 100 + 5)  # fmt: skip
        entry = result.setdefault("b", {})[condition] = {
            "generations": search_b.solved_at or cfg.max_generations,
            "solved": search_b.solved_at is not None, "accuracy": accuracy_b}  # fmt: skip
        say(f"  B {condition}: {entry['generations']} generations, {accuracy_b:.3f} held out")
    return result


def summarise(cfg: PathTicketsConfig, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per condition, means and 95% intervals over the units: sparsity, A's accuracy and
    retraining generations, B's generations, solved count and accuracy, and B's generations
    paired against scratch and the evolved (unpruned) frozen path."""

    def stat(values: list[float]) -> dict[str, Any]:
        mean, half = mean_interval(values)
        return {"mean": mean, "ci95": half, "runs": values}

    conditions: dict[str, Any] = {}
    for condition in ["scratch", *cfg.levels()]:
        row: dict[str, Any] = {}
        b = [r["b"][condition] for r in results]
        row["b_generations"] = stat([e["generations"] for e in b])
        row["b_solved"] = sum(e["solved"] for e in b)
        row["b_accuracy"] = stat([e["accuracy"] for e in b])
        for other in ("scratch", "evolved"):
            if other != condition:
                row[f"b_generations_minus_{other}"] = stat(
                    [r["b"][condition]["generations"] - r["b"][other]["generations"]
                     for r in results])  # fmt: skip
        if condition != "scratch":
            levels = [r["levels"][condition] for r in results]
            row["sparsity"] = stat([e["sparsity"] for e in levels])
            row["a_accuracy"] = stat([e["a_accuracy"] for e in levels])
            if condition != "evolved":
                row["a_generations"] = stat([e["a_generations"] for e in levels])
                row["a_solved"] = sum(e["a_solved"] for e in levels)
                row["a_accuracy_minus_r0"] = stat(
                    [e["a_accuracy"] - r["levels"]["r0"]["a_accuracy"]
                     for e, r in zip(levels, results, strict=True)])  # fmt: skip
        conditions[condition] = row
    return {"units": len(results), "pairs": sorted({f"{r['task_a']}:{r['task_b']}"
                                                    for r in results}),  # fmt: skip
            "rounds": cfg.rounds, "prune_fraction": cfg.prune_fraction,
            "threshold": cfg.threshold, "max_generations": cfg.max_generations,
            "fixed_generations": cfg.fixed_generations,
            "conditions": conditions,
            "a_keeps_accuracy": keeps_accuracy(conditions, cfg.levels()[1:]),
            "results": results}  # fmt: skip


KEPT = 0.01
"""A level keeps A's accuracy while its mean held-out accuracy is at most 1 point below r0's."""


def keeps_accuracy(conditions: dict[str, Any], levels: list[str]) -> dict[str, Any]:
    """``held_to``: the highest sparsity before the first level whose mean A accuracy is more
    than :data:`KEPT` below r0's (paired over units); ``below_at``: that level's sparsity
    (None: none is); ``surely_below_at``: the first level whose whole 95% interval is below."""
    below = surely = None
    for name in levels:
        difference = conditions[name]["a_accuracy_minus_r0"]
        sparsity = conditions[name]["sparsity"]["mean"]
        if below is None and difference["mean"] < -KEPT:
            below = sparsity
        if (
            surely is None
            and difference["ci95"] is not None
            and (difference["mean"] + difference["ci95"] < -KEPT)
        ):
            surely = sparsity
    held = [conditions[n]["sparsity"]["mean"] for n in levels]
    return {"held_to": max((x for x in held if below is None or x < below), default=0.0),
            "below_at": below, "surely_below_at": surely}  # fmt: skip


def open_run(cfg: PathTicketsConfig) -> tuple[Path, list[dict[str, Any]]]:
    """A new run directory, or the resumed run's directory and finished units (``cfg`` is the
    resumed run's own, :func:`resumed_config`)."""
    if cfg.resume is None:
        run_path = rd.prepare_run_dir(cfg.run_dir, "path_tickets", cfg.seed)
        rd.save_config(run_path, cfg)
        return run_path, []
    run_path = Path(cfg.resume)
    state = rd.load_checkpoint(run_path, "path_tickets", {"results": list}) or {"results": []}
    return run_path, state["results"]


def resumed_config(cfg: PathTicketsConfig) -> PathTicketsConfig:
    """``cfg``, or with ``--resume`` the config the run was started with."""
    if cfg.resume is None:
        return cfg
    saved = rd.load_config(cfg.resume, PathTicketsConfig)
    return dataclasses.replace(saved, resume=cfg.resume)


def main(cfg: PathTicketsConfig) -> dict[str, Any]:
    """Run every unit not yet finished; write summary.json, levels.png; return the summary.
    After each unit but the last, summary.json and levels.png show the units finished so far
    (``partial``: how many the run has in all)."""
    torch.set_num_threads(1)
    cfg = resumed_config(cfg)
    pairs = choose_pairs(cfg.digits())
    names = sorted({name for pair in pairs for name in pair})
    tasks, held_out = load_tasks(cfg.digits(), names, torch.device("cpu"))  # before any write
    run_path, results = open_run(cfg)
    console = Console()
    done = {(r["task_a"], r["task_b"], r["seed"]) for r in results}
    units = [(a, b, cfg.seed + k) for a, b in pairs for k in range(cfg.repeats)]
    for index, (a, b, seed) in enumerate(units):
        if (a, b, seed) in done:
            continue
        start = time.monotonic()
        console.print(f"unit {index + 1}/{len(units)}: {a} → {b}, seed {seed}")
        unit = Unit(cfg, tasks[a], tasks[b], held_out[a], held_out[b], seed)
        results.append(run_unit(unit, lambda line: console.print(line, highlight=False)))
        rd.save_checkpoint(run_path, {"results": results})
        with rd.segment_writer(run_path, f"{a}-{b}/s{seed}".replace("/", "_", 2)) as writer:
            log_unit(writer, results[-1], cfg.rounds)
        if len(results) < len(units):  # what the finished units show so far
            partial = {**summarise(cfg, results), "partial": len(units)}
            rd.write_json(run_path / rd.SUMMARY, partial)
            plot_levels(run_path / "levels.png", partial)
        console.print(f"unit {index + 1} done in {time.monotonic() - start:.0f} s")
    summary = summarise(cfg, results)
    with rd.segment_writer(run_path, "") as writer:  # the means, overlaid on the units'
        log_unit(writer, mean_entry(summary), cfg.rounds)
    rd.write_json(run_path / rd.SUMMARY, summary)
    plot_levels(run_path / "levels.png", summary)
    print_table(console, summary, run_path)
    return summary


if __name__ == "__main__":
    run_cli(main, PathTicketsConfig, __doc__.split("\n\n")[0])
