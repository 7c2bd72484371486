"""PathNet transfer on binary image tasks: the first experiment of Fernando et al. 2017.

arXiv:1701.08734, section 3.1. For K pairs of binary tasks (A, B) — ``digits/3v5`` tells digit 3
from 5, ``fashion/coat-v-shirt`` Fashion-MNIST's coats from its shirts — it measures how fast B
is learned, by both of the paper's protocols: the generations of the binary tournament needed to
reach a training accuracy threshold (its MNIST protocol) and, with ``--fixed-generations G``, the
held-out accuracy of the best path after G generations (its CIFAR/SVHN protocol), three ways:

* ``scratch``: PathNet evolution on B with a fresh library and population;
* ``finetune``: the control the paper compares with. ``--finetune evolve`` (default): evolution
  continues on B from the population and parameters reached on A, nothing frozen or
  re-initialised, a new head. ``--finetune fixed``: one fixed path trained on A, then on B;
* ``pathnet``: PathNet evolution on A, A's best path frozen, everything else and the population
  re-initialised, a new head, evolution on B.

Defaults follow the paper (threshold 0.998, population 64, ...); ``--preset fast`` is the quick
setting for smoke runs. docs/reproduction.md has the ablation behind every default.

Run ``pathevo binary_digits --help`` for the options; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import statistics
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from pathevo.agents.continual import accuracy, fixed_noisy_batch
from pathevo.agents.hyper_agents import HyperConfig
from pathevo.agents.images import usage_image
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.phase_log import PhaseLog, moe_load_cv2
from pathevo.agents.phase_reporters import log_routing
from pathevo.agents.processes import keep_freed_memory
from pathevo.agents.registry import LAYER_KINDS, layer_kind
from pathevo.agents.supervised import (
    PathTrainer,
    SupervisedConfig,
    train_fixed_path,
)
from pathevo.envs.digits import (
    BinaryTask,
    all_tasks,
    canonical_task,
    make_binary_task,
    parse_task,
    related,
    salt_and_pepper,
)
from pathevo.envs.image_data import DATASETS, SPLITS, get_dataset, load_images
from pathevo.evolution.backends import BACKENDS, check_backend, map_backend
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.operators import check_genome, genome_to_path, module_usage
from pathevo.evolution.toolbox import (
    PathGenome,
    make_toolbox,
    path_genome_from_data,
    path_genome_to_data,
)
from pathevo.evolution.tournament import (
    SearchState,
    TournamentOutcome,
    evolve,
    search_from_data,
    search_to_data,
)
from pathevo.evolution.transfer import begin_transfer, module_reuse, reused_modules
from pathevo.modules.library import PathLibrary, linear_library
from pathevo.modules.moe import take_routing
from pathevo.runners.figures.binary_digits import plot_curves, print_table
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import choice_of, resolve_device, run_cli
from pathevo.runners.plumbing.paired import (
    CONDITIONS,
    accuracy_differences,
    curve_mean,
    mean_curves,
    paired_statistics,
)
from pathevo.runners.plumbing.plots import path_grid, plot_transfer_paths

LayerKindName = choice_of(sorted(LAYER_KINDS))
DatasetName = choice_of(list(DATASETS))
Backend = choice_of(list(BACKENDS))

PHASES = ("scratch", "pathnet_a", "pathnet_b", "finetune_a", "finetune_b")
"""Every phase a pair may run (a phase's seed is derived from its place here)."""
B_PHASES = {"scratch": "scratch", "finetune_b": "finetune", "pathnet_b": "pathnet"}
"""The phases that learn task B, and the condition each measures."""

FAST_PRESET: dict[str, Any] = {"threshold": 0.99, "max_generations": 300}
"""``--preset fast``: the quick setting of smoke runs (fields still at their defaults only)."""


def phase_names(cfg: BinaryDigitsConfig) -> tuple[str, ...]:
    """The phases of one pair: evolving fine-tuning starts from pathnet_a's end state."""
    if cfg.finetune == "evolve":
        return ("scratch", "pathnet_a", "pathnet_b", "finetune_b")
    return PHASES


@dataclass
class BinaryDigitsConfig:
    """PathNet's binary-digit transfer experiment (defaults close to the paper's)."""

    seed: int = 0
    """Seed of everything; a fixed seed with the serial backend reproduces a run exactly."""
    pairs: int = 3
    """K: number of random (A, B) task pairs, distinct, drawn from --dataset's 45 tasks."""
    dataset: DatasetName = "digits"
    """The data set random pairs are drawn from: digits (scikit-learn's 8x8 digits, built in),
    fashion (Fashion-MNIST), mnist, kmnist or emnist (their IDX files, see --data-dir)."""
    tasks: tuple[str, ...] = ()
    """Explicit pairs 'A:B' of task ids, such as 'digits/3v5:digits/1v7' or
    'fashion/coat-v-shirt:fashion/tshirt-v-pullover' (overrides --pairs and --dataset)."""
    preset: Literal["paper", "fast"] = "paper"
    """paper: the defaults below (the paper's settings); fast: threshold 0.99 and 300 generations
    at most, for smoke runs (flags given explicitly with other values still win)."""
    threshold: float = 0.998
    """Training accuracy (fitness) at which a task counts as learned (the paper's 0.998)."""
    max_generations: int = 1000
    """Give up on a phase after this many generations (counted as this many, and reported as
    censored)."""
    fixed_generations: int = 0
    """The CIFAR/SVHN protocol: the phases on B run at least this many generations (past the
    threshold) and the held-out accuracy of their best path at this generation is reported
    beside the generations to the threshold. 0: off (phases stop at the threshold)."""
    test_every: int = 10
    """Generations between held-out accuracy measurements of the best path (its learning
    curve); each phase's last generation is measured too."""
    resolution: int | None = 28
    """Input images are resized to this side (28: MNIST's size; the 8x8 digits are upsampled);
    None keeps the data's own size. The noise is applied per pixel at this size, so the 8x8
    digits at 8 are far harder than at 28 (no redundancy to average the noise out)."""
    hidden: int = 20
    """Units per linear module."""
    last_layer: Literal["sum", "mean"] = "sum"
    """How the last shared layer combines its active modules."""
    finetune: Literal["evolve", "fixed"] = "evolve"
    """The fine-tuning control. evolve: evolution continues on B from the population and the
    parameters reached on A, nothing frozen or re-initialised (a new head); fixed: one fixed
    path trained on A, then on B (no evolution)."""
    noise_once: bool = False
    """Apply the salt-and-pepper noise once to the data set (as the public reimplementations do)
    instead of afresh to every minibatch."""
    reinit_unfrozen: bool = True
    """PathNet transfer: re-initialise the modules not on A's frozen path (the paper)."""
    reset_population: bool = True
    """PathNet transfer: a fresh random population on B (the paper), not A's final one."""
    copy_head: bool = False
    """B's new head starts as a copy of the head pathnet_a ended with, not freshly initialised."""
    frozen_always_active: bool = False
    """PathNet transfer: every B path also runs A's frozen path (jsikyoon/pathnet's deviation)."""
    library_kind: LayerKindName = "linear"
    """Kind of the last library layer: linear modules, an MoE layer whose experts are the
    modules (the path's N ids are the experts each task's own gate may route to), hyper:
    linear modules whose weights a shared static hypernetwork generates from small embeddings,
    or cppn: linear modules initialised by a random CPPN each (HyperNEAT's expression)."""
    moe: MoEConfig = field(default_factory=MoEConfig)
    hyper: HyperConfig = field(default_factory=HyperConfig)
    evo: EvoConfig = field(default_factory=EvoConfig)
    train: SupervisedConfig = field(default_factory=SupervisedConfig)
    data_dir: str | None = None
    """Directory of the MNIST-format IDX files (train-images-idx3-ubyte[.gz], t10k-...), or of
    their data sets' folders (fashion-mnist/, mnist/, ...); default: $PATHEVO_DATA, then
    /usr/share/datasets (where `apt-get install dataset-fashion-mnist` puts Fashion-MNIST)."""
    backend: Backend = "serial"
    """Where fitness evaluations run: this process, a pool of local processes training the
    library in shared memory (Hogwild), or Ray tasks (a local instance or a cluster) that train
    copies and send their parameter changes back (docs/ray.md)."""
    workers: int = 2
    """Processes of the 'processes' backend (CPUs of a local Ray instance)."""
    ray_address: str | None = None
    """The Ray cluster of the 'ray' backend: host:port of its head, ray://host:port, or auto
    (the one started on this machine with `ray start`); default: a new local instance."""
    device: str = "cpu"
    """Torch device: cpu, cuda, cuda:N or auto."""
    run_dir: str | None = None
    """Where to write the run (default: runs/binary_digits-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory from its last checkpoint (other flags are ignored but
    --extend-pairs)."""
    extend_pairs: int = 0
    """With --resume: grow a run of random pairs to this many pairs, finished or not (its own
    pairs stay first and as they are: pairs are drawn in order from the seed); 0: as it was."""
    checkpoint_every: int = 25
    """Generations between checkpoints (a checkpoint is also written after every phase)."""
    image_every: int = 1
    """Generations between TensorBoard images of module usage."""
    threads: int = 1
    """Torch intra-op threads (the modules are tiny: one thread is fastest)."""
    progress: bool = True
    """Show a progress display."""

    def __post_init__(self) -> None:
        layer_kind(self.library_kind)
        if self.preset == "fast":
            for name, value in FAST_PRESET.items():
                if getattr(self, name) == _DEFAULTS[name]:
                    setattr(self, name, value)
        if min(self.pairs, self.max_generations, self.hidden, self.test_every) <= 0:
            raise ValueError("pairs, max_generations, hidden and test_every must be positive")
        if not 0 <= self.fixed_generations <= self.max_generations:
            raise ValueError(
                f"fixed_generations must lie in [0, max_generations={self.max_generations}], "
                f"got {self.fixed_generations}"
            )
        if self.pairs > 45 * 44 and not self.tasks:
            raise ValueError(f"a data set has {45 * 44} ordered pairs of tasks, not {self.pairs}")
        if self.resolution is not None and self.resolution <= 0:
            raise ValueError(f"resolution must be positive, got {self.resolution}")
        if min(self.checkpoint_every, self.image_every, self.workers, self.threads) <= 0:
            raise ValueError("checkpoint_every, image_every, workers and threads must be positive")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {self.threshold}")
        pairs = []
        for pair in self.tasks:
            task_a, colon, task_b = pair.partition(":")
            if not colon:
                raise ValueError(
                    f"task pair {pair!r} should read 'A:B', such as 'digits/3v5:digits/1v7'"
                )
            pairs.append(f"{canonical_task(task_a)}:{canonical_task(task_b)}")
        self.tasks = tuple(pairs)
        if self.data_dir is not None and all(
            get_dataset(parse_task(name).dataset).folder is None
            for pair in (self.tasks or [f"{self.dataset}/0v1:"]) for name in pair.split(":") if name
        ):  # fmt: skip
            raise ValueError(
                "--data-dir is for the IDX data sets, and no pair uses one (digits/ is built in): "
                "pass --dataset mnist (fashion, kmnist, emnist) or tasks such as mnist/3v5"
            )
        check_backend(self.backend, self.ray_address)  # Ray: installed, the address answers


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(BinaryDigitsConfig)}


def choose_pairs(cfg: BinaryDigitsConfig) -> list[tuple[str, str]]:
    """The (A, B) task pairs: the explicit ones, or K distinct random ones from the seed."""
    if cfg.tasks:
        return [tuple(pair.split(":")) for pair in cfg.tasks]  # type: ignore[misc]
    rng, tasks = random.Random(cfg.seed), all_tasks(cfg.dataset)
    pairs: list[tuple[str, str]] = []
    while len(pairs) < cfg.pairs:
        pair = tuple(rng.sample(tasks, 2))
        if pair not in pairs:
            pairs.append(pair)  # type: ignore[arg-type]
    return pairs


def fresh_library(cfg: BinaryDigitsConfig, input_size: int, device: torch.device) -> PathLibrary:
    last = layer_kind(cfg.library_kind)(cfg)
    evo = cfg.evo
    library = linear_library(input_size, cfg.hidden, evo.layers, evo.modules, cfg.last_layer, last)
    return library.to(device)


def start_phase(
    cfg: BinaryDigitsConfig,
    phase: str,
    task: BinaryTask,
    library: PathLibrary | None,
    result: dict[str, Any],
    device: torch.device,
    rng: random.Random,
    after_a: dict[str, Any] | None = None,
) -> tuple[PathLibrary, SearchState]:
    """Set up a phase: its library (fresh, carried over, or transferred) and its search state.

    ``after_a`` is the library and population pathnet_a ended with; the B phases of PathNet and
    of evolving fine-tuning start from it (without it, from ``library`` as it is).
    """
    from_a = phase == "pathnet_b" or (phase == "finetune_b" and cfg.finetune == "evolve")
    if from_a and after_a is not None:
        library = fresh_library(cfg, task.input_size, device)
        library.load_state_dict(after_a["library"])
    elif phase in ("scratch", "pathnet_a", "finetune_a") or library is None:
        library = fresh_library(cfg, task.input_size, device)
    if phase == "pathnet_b":
        best_a = genome_to_path(result["best_a"], cfg.evo.layers, cfg.evo.active)
        if cfg.reinit_unfrozen:
            begin_transfer(library, best_a, result["task_a"])
        else:
            library.freeze(best_a, result["task_a"])
    library.add_task(task.name)  # the task's own parts of the layers (an MoE gate)
    if phase.startswith("finetune") and cfg.finetune == "fixed":
        # The fixed path: the first N modules of every layer (all distinct).
        fixed = [m for _ in range(cfg.evo.layers) for m in range(cfg.evo.active)]
        return library, SearchState(population=[PathGenome(fixed)])
    carry = phase == "finetune_b" or (phase == "pathnet_b" and not cfg.reset_population)
    if carry and after_a is not None:
        population = copy.deepcopy(after_a["population"])
        for genome in population:
            del genome.fitness.values  # measured on A
        return library, SearchState(population=population)
    toolbox = make_toolbox(cfg.evo, rng=rng)
    return library, SearchState(population=toolbox.population(n=cfg.evo.population))


def load_tasks(
    cfg: BinaryDigitsConfig, names: list[str], device: torch.device
) -> tuple[dict[str, BinaryTask], dict[str, BinaryTask]]:
    """The binary tasks by name (their training split; with ``--noise-once`` the inputs carry
    the noise already) and their held-out split with the training noise drawn once."""
    tasks = {name: make_binary_task(name, cfg.data_dir, cfg.resolution) for name in names}
    held_out = {}
    for name, task in tasks.items():
        if cfg.noise_once:
            generator = torch.Generator().manual_seed(task_seed(cfg.seed, name, "train"))
            task.x = salt_and_pepper(task.x, cfg.train.noise, generator)
        task.x, task.y = task.x.to(device), task.y.to(device)
        test = make_binary_task(name, cfg.data_dir, cfg.resolution, split="test")
        x, y = fixed_noisy_batch(test, cfg.train.noise, task_seed(cfg.seed, name, "test"))
        held_out[name] = BinaryTask(name, x.to(device), y.to(device))
    return tasks, held_out


def task_seed(seed: int, name: str, split: str) -> int:
    """The seed of a task's noise drawn once: from the run's seed and the task's name alone, so a
    task's held-out images are the same whatever other pairs the run holds."""
    return zlib.crc32(f"{seed}/{name}/{split}".encode())


@torch.no_grad()
def held_out_accuracy(
    library: PathLibrary, head: nn.Module, path: torch.Tensor, task: BinaryTask
) -> float:
    """Accuracy of ``path`` ([L, N]) and ``head`` on a held-out task: one pass in eval mode (an
    MoE gate adds no noise and draws nothing from the random streams of training), whose
    routing record is discarded (it is not training's)."""
    training = library.training
    library.eval()
    try:
        logits = head(library(task.x, path, task.name))  # [n, 2]
    finally:
        library.train(training)
        take_routing(library)
    return accuracy(logits, task.y)


@dataclass
class HeldOutMeasure:
    """The held-out accuracy of a genome's path, through the library and head as they are."""

    library: PathLibrary
    head: nn.Module
    path: Callable[[list[int]], torch.Tensor]
    """A genome's [L, N] path (its trainer's ``path``)."""
    task: BinaryTask

    def __call__(self, genome: list[int]) -> float:
        return held_out_accuracy(self.library, self.head, self.path(genome), self.task)


class GenerationLogger:
    """Per generation: TensorBoard scalars and the module-usage image (into the phase's own
    directory ``pair<k>/<phase>``: tags name only the quantity), the learning curve (held-out
    accuracy of the best path every ``--test-every`` generations), progress, checkpoints."""

    def __init__(
        self, cfg, writer, progress, bar, library, checkpoint,
        measure: Callable[[list[int]], float], curve: list[list[float]],
    ) -> None:  # fmt: skip
        self.cfg, self.writer, self.progress, self.bar = cfg, writer, progress, bar
        self.library, self.checkpoint = library, checkpoint
        self.measure, self.curve = measure, curve
        """The held-out accuracy of a genome's path now; the phase's curve: rows [generation,
        best training fitness, held-out accuracy of the best path]."""
        self.routing = PhaseLog()
        """The MoE layers' routing of the latest generation (in this process: serial backend)."""

    def measure_best(self, state: SearchState) -> None:
        """Append the best path's held-out accuracy at this generation to the curve (once)."""
        if self.curve and self.curve[-1][0] == state.generation:
            return
        accuracy = self.measure(state.best)
        self.curve.append([state.generation, state.best_fitness, accuracy])
        self.writer.add_scalar("charts/test_accuracy", accuracy, state.generation)

    def __call__(self, *, state: SearchState, outcome: TournamentOutcome) -> None:
        gen, evo = state.generation, self.cfg.evo
        self.writer.add_scalar("evolution/fitness_best", state.best_fitness, gen)
        self.writer.add_scalar("evolution/fitness_mean", state.logbook[-1]["mean"], gen)
        self.writer.add_scalar("charts/accuracy", outcome.winner_fitness, gen)
        if gen % self.cfg.image_every == 0:
            usage = module_usage(state.population, evo.layers, evo.active, evo.modules)
            frozen = torch.stack(self.library.frozen_mask()).cpu()
            self.writer.add_image("evolution/paths", usage_image(usage, frozen), gen)
        reports = {name: r.as_lists() for name, r in take_routing(self.library).items()}
        if reports:  # an MoE layer: per-expert load and importance, load CV², usage image
            log_routing(self.writer, self.routing, 0, gen, reports)
        if gen % self.cfg.test_every == 0 or gen == self.cfg.fixed_generations:
            self.measure_best(state)  # its pass leaves no routing record
        self.progress.update(self.bar, completed=gen, best=state.best_fitness)
        if self.checkpoint_due(gen):
            self.checkpoint(state)

    def checkpoint_due(self, generation: int) -> bool:
        """Whether to checkpoint after ``generation``: the first generation that ends a round
        of tournaments (every one, serially; every K-th with K at once) at or after each
        multiple of ``--checkpoint-every``. A round is trained as a whole before its first
        tournament is settled, so a checkpoint inside it could not be resumed exactly."""
        every, rounds = self.cfg.checkpoint_every, max(self.cfg.evo.tournaments_at_once, 1)
        return generation % rounds == 0 and generation // every > (generation - rounds) // every


def check_device(cfg: BinaryDigitsConfig) -> torch.device:
    device = resolve_device(cfg.device)
    if cfg.backend != "serial" and device.type != "cpu":
        raise ValueError(f"the {cfg.backend!r} backend trains on CPU workers; use --device cpu")
    return device


def open_run(cfg: BinaryDigitsConfig) -> tuple[BinaryDigitsConfig, Path, dict[str, Any]]:
    """A new run directory, or the resumed run's config, directory and checkpoint."""
    if cfg.resume is None:
        check_device(cfg)  # before anything is written
        for dataset in sorted({parse_task(name).dataset for pair in choose_pairs(cfg)
                               for name in pair}):  # fmt: skip
            for split in SPLITS:  # the files are there and readable
                load_images(dataset, split, cfg.data_dir)
        run_path = rd.prepare_run_dir(cfg.run_dir, "binary_digits", cfg.seed)
        rd.save_config(run_path, cfg)
        return cfg, run_path, {"pair": 0, "phase": 0, "results": [], "search": None}
    run_path = Path(cfg.resume)
    saved = rd.load_config(run_path, BinaryDigitsConfig)
    extend = cfg.extend_pairs
    cfg = dataclasses.replace(saved, resume=cfg.resume, progress=cfg.progress)
    state = load_state(run_path)  # refused or malformed: nothing has run
    state = state or {"pair": 0, "phase": 0, "results": [], "search": None}
    if extend:
        if cfg.tasks or extend < cfg.pairs:
            raise ValueError(
                f"--extend-pairs grows a run of random pairs ({cfg.pairs} here"
                f"{', given by --tasks' if cfg.tasks else ''}) to more, not to {extend}"
            )
        cfg = dataclasses.replace(cfg, pairs=extend)
        if extend > len(state["results"]):
            state.pop("summary", None)  # a finished run goes on after its last pair
        rd.save_config(run_path, dataclasses.replace(cfg, resume=None, progress=saved.progress))
    return cfg, run_path, state


NEEDS = {"pair": int, "phase": int, "results": list, "search": (dict, type(None))}
"""What a binary_digits checkpoint holds (and the types of those values) to resume from."""


def to_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as a checkpoint holds it: the search state and pathnet_a's population as plain
    data (:func:`pathevo.evolution.tournament.search_to_data`), the rest as it is."""
    saved = dict(state)
    if state.get("search") is not None:
        saved["search"] = search_to_data(state["search"])
    if state.get("after_a") is not None:
        population = [path_genome_to_data(genome) for genome in state["after_a"]["population"]]
        saved["after_a"] = {**state["after_a"], "population": population}
    return saved


def load_state(run_path: Path) -> dict[str, Any] | None:
    """The run's state from its checkpoint (the inverse of :func:`to_checkpoint`), None if it has
    none; a one-line ValueError if the checkpoint is refused or lacks what a resume needs."""
    state = rd.load_checkpoint(run_path, "binary_digits", NEEDS)
    if state is None:
        return None
    try:
        if state["search"] is not None:
            state["search"] = search_from_data(state["search"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise rd.malformed(run_path, "search", error) from None
    try:
        if state.get("after_a") is not None:
            population = [path_genome_from_data(g) for g in state["after_a"]["population"]]
            state["after_a"] = {**state["after_a"], "population": population}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise rd.malformed(run_path, "after_a", error) from None
    for index, result in enumerate(state["results"]):
        try:
            check_result(result)
        except (KeyError, TypeError, ValueError) as error:
            raise rd.malformed(run_path, f"results[{index}]", error) from None
    return state


def check_result(result: Any) -> None:
    """A TypeError unless ``result`` has the types a pair's result holds (its tasks' names,
    generations, solved flags, genomes, module reuse)."""
    if not isinstance(result, dict):
        raise TypeError(f"a {type(result).__name__}, not a pair's result (dict)")
    kinds = {"task_a": str, "task_b": str, "_generations": int, "_solved": bool,
             "best_a": list, "best_b": list, "module_reuse": (int, float),
             "reused_modules": list, "_accuracy": (int, float), "_curve": list}  # fmt: skip
    for key in ("task_a", "task_b"):
        if key not in result:
            raise KeyError(key)
    for key, value in result.items():
        kind = kinds.get(key) or kinds.get("_" + key.rpartition("_")[2])
        if kind is not None and not isinstance(value, kind):
            raise TypeError(f"its {key!r} is a {type(value).__name__}")
        if key in ("best_a", "best_b") and not all(type(gene) is int for gene in value):
            raise TypeError(f"its {key!r} is not a list of module ids")


def check_progress(
    cfg: BinaryDigitsConfig, state: dict[str, Any], pairs: list[tuple[str, str]],
    phases: list[str], run_path: Path,
) -> None:  # fmt: skip
    """A one-line ValueError naming the checkpoint entry (``pair``, ``phase``, ``results[k]``)
    that does not fit this run's pairs, phases and paths."""
    pair, phase, results = state["pair"], state["phase"], state["results"]
    if not 0 <= pair <= len(pairs):
        raise rd.malformed(run_path, "pair", ValueError(f"no pair {pair} of {len(pairs)}"))
    if not 0 <= phase < len(phases):
        raise rd.malformed(run_path, "phase", ValueError(f"no phase {phase} of {len(phases)}"))
    if len(results) > pair + 1:
        raise rd.malformed(run_path, "results", ValueError(f"{len(results)} for pair {pair}"))
    for k, result in enumerate(results):
        done = phases if k < pair else phases[:phase]
        try:
            if [result["task_a"], result["task_b"]] != list(pairs[k]):
                raise ValueError(f"pair {result['task_a']}→{result['task_b']}, not {pairs[k]}")
            for name in done:
                needed = ["generations", "curve", "test_accuracy"]
                if cfg.fixed_generations and name in B_PHASES:
                    needed.append("fixed_accuracy")
                for key in needed:
                    if f"{name}_{key}" not in result:
                        raise KeyError(f"{name}_{key}")
            for key, curve in result.items():
                if key.endswith("_curve") and not all(
                    isinstance(row, list) and len(row) == 3 for row in curve
                ):
                    raise ValueError(f"its {key!r} holds rows other than [gen, fitness, accuracy]")
            for key in ("best_a", "best_b"):
                if key in result:
                    check_genome(result[key], cfg.evo.layers, cfg.evo.active, cfg.evo.modules)
            if "pathnet_a" in done and "best_a" not in result:
                raise KeyError("best_a")
        except (KeyError, TypeError, ValueError) as error:
            raise rd.malformed(run_path, f"results[{k}]", error) from None


def record_phase(cfg: BinaryDigitsConfig, result: dict, phase: str, search: SearchState) -> None:
    """Store a finished phase's generations (and, for PathNet, its paths and their overlap)."""
    result[f"{phase}_generations"] = search.solved_at or cfg.max_generations
    result[f"{phase}_solved"] = search.solved_at is not None
    curve = result[f"{phase}_curve"]
    result[f"{phase}_test_accuracy"] = curve[-1][2]
    if cfg.fixed_generations and phase in B_PHASES:
        at = [row[2] for row in curve if row[0] == cfg.fixed_generations]
        result[f"{phase}_fixed_accuracy"] = at[0]
    if phase == "pathnet_a":
        result["best_a"] = search.best
    if phase == "pathnet_b":
        path_a = genome_to_path(result["best_a"], cfg.evo.layers, cfg.evo.active)
        path_b = genome_to_path(search.best, cfg.evo.layers, cfg.evo.active)
        result["best_b"] = search.best
        result["module_reuse"] = module_reuse(path_b, path_a)
        result["reused_modules"] = reused_modules(path_b, path_a)


def main(cfg: BinaryDigitsConfig) -> dict[str, Any]:
    """Run the experiment (or resume it) and return the summary written to summary.json."""
    cfg, run_path, state = open_run(cfg)
    if state.get("summary") is not None:
        return state["summary"]  # the run had finished
    device = check_device(cfg)
    torch.set_num_threads(cfg.threads)
    if cfg.evo.tournaments_at_once:
        keep_freed_memory()  # batched steps: MB-sized tensors, freed and made again every step
    pairs = choose_pairs(cfg)
    tasks, held_out = load_tasks(cfg, sorted({name for pair in pairs for name in pair}), device)
    phases = phase_names(cfg)
    train_cfg = dataclasses.replace(cfg.train, noise=0.0) if cfg.noise_once else cfg.train

    rng = random.Random()
    library: PathLibrary | None = None
    head = nn.Linear(cfg.hidden, 2).to(device)
    check_progress(cfg, state, pairs, phases, run_path)
    if state.get("after_a") is not None:  # where the B phases start: fits this run's network
        for key, module in (("library", fresh_library(cfg, tasks[pairs[0][0]].input_size,
                                                       device)), ("head", head)):  # fmt: skip
            try:
                copy.deepcopy(module).load_state_dict(state["after_a"][key])
            except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as error:
                raise rd.malformed(run_path, f"after_a[{key!r}]", error) from None
    if state.get("library") is not None:  # resuming: restore the exact state
        library = fresh_library(cfg, tasks[pairs[0][0]].input_size, device)
        restoring = (("library", library.load_state_dict), ("head", head.load_state_dict),
                     ("rng", rng.setstate), ("torch_rng", torch.set_rng_state))  # fmt: skip
        for key, load in restoring:
            try:
                load(state[key])
            except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as error:
                raise rd.malformed(run_path, key, error) from None

    def checkpoint(search: SearchState | None) -> None:
        state["search"] = search
        state["library"] = library.state_dict() if library is not None else None
        state["head"] = head.state_dict()
        state["rng"], state["torch_rng"] = rng.getstate(), torch.get_rng_state()
        rd.save_checkpoint(run_path, to_checkpoint(state))

    writer = rd.segment_writer(run_path, "")  # config and summary: every session writes all
    writer.add_text("config", f"```\n{json.dumps(dataclasses.asdict(cfg), indent=2)}\n```")
    console = Console()
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("best {task.fields[best]:.3f}"), TimeElapsedColumn(),
        console=console, disable=not cfg.progress,
    )  # fmt: skip
    with map_backend(cfg.backend, cfg.workers, cfg.seed, cfg.ray_address) as map_fn, progress:
        bar = progress.add_task("", total=cfg.max_generations, best=0.0)
        while state["pair"] < len(pairs):
            k, phase = state["pair"], phases[state["phase"]]
            if len(state["results"]) <= k:
                state["results"].append({"task_a": pairs[k][0], "task_b": pairs[k][1]})
            result = state["results"][k]
            task = tasks[pairs[k][0] if phase.endswith("_a") else pairs[k][1]]
            search = state["search"]
            start = 0 if search is None else search.generation + 1  # its first new generation
            if search is None:  # a new phase, not a resumed one
                seed = cfg.seed * 1000 + k * len(PHASES) + PHASES.index(phase)
                torch.manual_seed(seed)
                rng.seed(seed)
                after_a = state.get("after_a")
                library, search = start_phase(
                    cfg, phase, task, library, result, device, rng, after_a
                )
                head = nn.Linear(cfg.hidden, 2).to(device)
                if cfg.copy_head and phase.endswith("_b") and after_a is not None:
                    head.load_state_dict(after_a["head"])
            if cfg.backend == "processes":  # workers train these in place (Hogwild)
                library.share_memory(), head.share_memory()
                task.x.share_memory_(), task.y.share_memory_()
            beside = None
            if phase == "pathnet_b" and cfg.frozen_always_active:  # A's path runs beside B's
                beside = genome_to_path(result["best_a"], cfg.evo.layers, cfg.evo.active).tolist()
            trainer = PathTrainer(
                library, head, task, train_cfg, cfg.evo.layers, cfg.evo.active, beside
            )
            toolbox = make_toolbox(cfg.evo, map_fn, rng)
            toolbox.register("evaluate", trainer)
            if cfg.backend == "serial":  # --evo.tournaments-at-once: a round in one batched call
                toolbox.register("evaluate_together", trainer.evaluate_together)
            description = f"pair {k + 1}/{len(pairs)} {pairs[k][0]}→{pairs[k][1]} {phase:<10}"
            best = max(search.best_fitness, 0.0)
            progress.update(bar, description=description, completed=search.generation, best=best)
            segment = f"pair{k}/{phase}"
            phase_writer = rd.segment_writer(run_path, segment, start)
            measure = HeldOutMeasure(library, head, trainer.path, held_out[task.name])
            curve = result.setdefault(f"{phase}_curve", [])
            log = GenerationLogger(
                cfg, phase_writer, progress, bar, library, checkpoint, measure, curve
            )
            least = cfg.fixed_generations if phase in B_PHASES else 0
            if phase.startswith("finetune") and cfg.finetune == "fixed":
                train_fixed_path(search, trainer, cfg.max_generations, cfg.threshold, log, least)
            else:
                evolve(search, toolbox, cfg.max_generations, cfg.threshold, log, least)
            log.measure_best(search)  # the phase's last generation
            phase_writer.close()
            record_phase(cfg, result, phase, search)
            if phase == "pathnet_a":  # where PathNet's and fine-tuning's B phases start
                state["after_a"] = {
                    "library": copy.deepcopy(library.state_dict()),
                    "head": copy.deepcopy(head.state_dict()),
                    "population": copy.deepcopy(search.population),
                }
            if log.routing.moe:
                result[f"{phase}_moe_load_cv2"] = moe_load_cv2(log.routing)
            state["phase"] = (state["phase"] + 1) % len(phases)
            state["pair"] += state["phase"] == 0
            checkpoint(None)

    summary = summarise(cfg, state["results"])
    rd.write_json(run_path / rd.SUMMARY, summary)
    plot(cfg, run_path / "paths.png", state["results"], summary)
    plot_curves(run_path / "curves.png", summary)
    for condition in CONDITIONS:
        mean = statistics.mean(summary[f"{condition}_generations"])
        writer.add_scalar(f"summary/{condition}_generations_mean", mean)
    writer.close()
    state["summary"] = summary
    rd.save_checkpoint(run_path, to_checkpoint(state))
    print_table(console, summary, run_path)
    return summary


def completed_summary(run_path: Path) -> dict[str, Any] | None:
    """The summary of a run directory: of the finished run, or of the pairs an unfinished run
    completed (``partial`` then says how many pairs the run was given); None if none did."""
    if (run_path / rd.SUMMARY).exists():
        return json.loads((run_path / rd.SUMMARY).read_text())
    if not (run_path / rd.CHECKPOINT).exists():
        return None
    cfg = rd.load_config(run_path, BinaryDigitsConfig)
    state = load_state(run_path) or {"results": []}
    done = [r for r in state["results"] if "best_b" in r and "finetune_b_generations" in r]
    if not done:
        return None
    return {**summarise(cfg, done), "partial": len(choose_pairs(cfg))}


def summarise(cfg: BinaryDigitsConfig, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary.json content: generations per condition and pair, speedups, module reuse."""
    generations = {
        "scratch": [r["scratch_generations"] for r in results],
        "finetune": [r["finetune_b_generations"] for r in results],
        "pathnet": [r["pathnet_b_generations"] for r in results],
    }
    solved = {
        "scratch": [r["scratch_solved"] for r in results],
        "finetune": [r["finetune_b_solved"] for r in results],
        "pathnet": [r["pathnet_b_solved"] for r in results],
    }
    pathnet = statistics.mean(generations["pathnet"])
    relatedness = [related(r["task_a"], r["task_b"]) for r in results]
    return {
        "pairs": [[r["task_a"], r["task_b"]] for r in results],
        "related": relatedness,
        "threshold": cfg.threshold,
        "max_generations": cfg.max_generations,
        "fixed_generations": cfg.fixed_generations,
        "finetune_control": cfg.finetune,
        **{f"{c}_generations": generations[c] for c in CONDITIONS},
        **{f"{c}_solved": solved[c] for c in CONDITIONS},
        "pathnet_a_generations": [r["pathnet_a_generations"] for r in results],
        **(
            {"finetune_a_generations": [r["finetune_a_generations"] for r in results]}
            if cfg.finetune == "fixed"
            else {}
        ),
        "speedup_vs_scratch": statistics.mean(generations["scratch"]) / pathnet,
        "speedup_vs_finetune": statistics.mean(generations["finetune"]) / pathnet,
        "statistics": {
            "all": paired_statistics(generations, solved),
            **{
                name: paired_statistics(
                    {c: [g for g, r in zip(v, relatedness, strict=True) if r == want]
                     for c, v in generations.items()},
                    {c: [g for g, r in zip(v, relatedness, strict=True) if r == want]
                     for c, v in solved.items()},
                )
                for name, want in (("related", True), ("unrelated", False))
                if want in relatedness
            },
        },
        **accuracy_summary(cfg, results, relatedness),
        "module_reuse": [r["module_reuse"] for r in results],
        "module_reuse_mean": statistics.mean(r["module_reuse"] for r in results),
        "paths": [
            {"a": r["best_a"], "b": r["best_b"], "reused_modules": r["reused_modules"]}
            for r in results
        ],
        **(
            {"moe_load_cv2": [r.get("pathnet_b_moe_load_cv2") for r in results]}
            if any("pathnet_b_moe_load_cv2" in r for r in results)
            else {}
        ),
    }  # fmt: skip


def accuracy_summary(
    cfg: BinaryDigitsConfig, results: list[dict[str, Any]], relatedness: list[bool]
) -> dict[str, Any]:
    """Held-out accuracies of the best path on B per condition and pair — at the end of each
    phase and, with ``--fixed-generations`` G (the CIFAR/SVHN protocol), at generation G and as
    the mean over the learning curve up to G — with PathNet's paired differences, and the mean
    curves. (Without G, phases end at the threshold, at different generations, and neither a
    fixed-generation accuracy nor a curve mean would compare like with like.)"""
    measures = ["test_accuracy"]
    if cfg.fixed_generations:
        measures += ["fixed_accuracy", "curve_mean_accuracy"]
    out: dict[str, Any] = {}
    for phase, condition in B_PHASES.items():
        out[f"{condition}_test_accuracy"] = [r[f"{phase}_test_accuracy"] for r in results]
        if cfg.fixed_generations:
            out[f"{condition}_fixed_accuracy"] = [r[f"{phase}_fixed_accuracy"] for r in results]
            out[f"{condition}_curve_mean_accuracy"] = [
                curve_mean(r[f"{phase}_curve"], cfg.fixed_generations, cfg.test_every)
                for r in results
            ]
    out["accuracy_statistics"] = {
        name: {
            measure: accuracy_differences(
                {c: [v for v, r in zip(out[f"{c}_{measure}"], relatedness, strict=True)
                     if want is None or r == want] for c in CONDITIONS}
            )
            for measure in measures
        }
        for name, want in (("all", None), ("related", True), ("unrelated", False))
        if want is None or want in relatedness
    }  # fmt: skip
    out["curves"] = mean_curves(
        {c: [r[f"{phase}_curve"] for r in results] for phase, c in B_PHASES.items()}
    )
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.pstdev(values)


def plot(cfg: BinaryDigitsConfig, out: Path, results: list[dict[str, Any]], summary: dict) -> None:
    layers, active, modules = cfg.evo.layers, cfg.evo.active, cfg.evo.modules
    panels = [
        (
            f"{r['task_a']} → {r['task_b']}: reuse {r['module_reuse']:.0%}",
            path_grid(genome_to_path(r["best_a"], layers, active).tolist(), modules),
            path_grid(genome_to_path(r["best_b"], layers, active).tolist(), modules),
        )
        for r in results
    ]
    bars = {c: mean_std(summary[f"{c}_generations"]) for c in CONDITIONS}
    plot_transfer_paths(out, panels, bars, ylabel=f"generations to {cfg.threshold} on B")


if __name__ == "__main__":
    run_cli(main, BinaryDigitsConfig, description=__doc__.split("\n\n")[0])
