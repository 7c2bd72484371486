"""Continual learning: a sequence of tasks through one PathNet library, forgetting measured.

PathNet (Fernando et al. 2017, arXiv:1701.08734) trains tasks in turn through one library: after
each task its best path is frozen and its head kept, every other module is re-initialised, and
the next task evolves paths that may reuse the frozen modules. After every task, every task is
re-evaluated with its own path and head, filling the accuracy matrix R[i, j] (performance on
task j after learning task i) of Lopez-Paz & Ranzato 2017 (GEM, arXiv:1706.08840), summarised
by ACC, BWT (backward transfer; negative = forgetting) and FWT (forward transfer). Conditions:

* ``pathnet``: the sequence through one library, paths frozen (zero forgetting by construction);
* ``finetune``: one network (a fixed path: the first N modules of every layer) trained on task
  after task, a head per task — its R shows the forgetting PathNet avoids;
* ``scratch``: every task learned independently by PathNet from a fresh library.

Tasks are binary image tasks (``digits/3v5``, ``fashion/coat-v-shirt``: supervised, serial binary
tournament) or RL env ids of one family (MinAtar games, Labyrinth levels: PathNet-A3C). Run
``pathevo continual --help``; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.hyper_agents import HyperConfig
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.phase import WORKER_BACKENDS, check_mode, check_worker_backend
from pathevo.agents.registry import LAYER_KINDS, agent_names, get_agent, layer_kind
from pathevo.agents.supervised import SupervisedConfig
from pathevo.envs.digits import canonical_task, is_image_task
from pathevo.envs.image_data import DATASETS
from pathevo.evolution import continual as cl
from pathevo.evolution.config import EvoConfig
from pathevo.evolution.operators import genome_to_path
from pathevo.runners.figures.continual import matrix_figure, plot
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import choice_of, run_cli
from pathevo.runners.tasks.continual import Games, Images, Step, load_family

CONDITIONS = ("pathnet", "finetune", "scratch")
Condition = Literal["pathnet", "finetune", "scratch"]
LayerKindName = choice_of(sorted(LAYER_KINDS))
WorkerBackend = choice_of(list(WORKER_BACKENDS))
AgentName = choice_of(agent_names(evolves_paths=True))


@dataclass
class ContinualConfig:
    """A sequence of tasks through one library, with fine-tuning and from-scratch baselines."""

    tasks: tuple[str, ...] = ("digits/0v1", "digits/2v3", "digits/4v5", "digits/6v7")
    """The sequence, at least 2, distinct: binary image tasks (digits/3v5, mnist/3v5,
    fashion/coat-v-shirt or fashion/4v6, kmnist/o-v-ki, emnist/3v5; data sets may mix, inputs
    are resized to --resolution) or RL env ids of one family (MinAtar games, Labyrinth levels)."""
    seed: int = 0
    """Seed of everything; a fixed seed reproduces an image-task run exactly (and a resumed
    one)."""
    conditions: tuple[Condition, ...] = CONDITIONS
    """Which conditions to run (all three by default)."""
    grow: bool = False
    """When a layer has fewer than N free modules before a PathNet task, add modules instead of
    stopping with an error: each such layer grows by its own shortfall, the others not at all."""
    threshold: float = 0.99
    """Images: training accuracy (fitness) at which a task counts as learned."""
    max_generations: int = 300
    """Images: give up on a task after this many generations (tournaments)."""
    resolution: int = 28
    """Images: input images are resized to this side (28: MNIST's size)."""
    hidden: int = 20
    """Images: units per linear module."""
    last_layer: Literal["sum", "mean"] = "sum"
    """Images: how the last shared layer combines its active modules."""
    library_kind: LayerKindName = "linear"
    """Images: kind of the last library layer (see pathevo binary_digits --help)."""
    held_out: float = 0.25
    """Images: share of every task's examples kept out of training; R is measured on them (with
    salt-and-pepper noise drawn once)."""
    evo: EvoConfig = field(default_factory=EvoConfig)
    train: SupervisedConfig = field(default_factory=SupervisedConfig)
    data_dir: str | None = None
    """Images: directory of the data sets' IDX files (or of their sub-folders, such as
    fashion-mnist/); default: $PATHEVO_DATA, then /usr/share/datasets. digits/ needs none."""
    agent: AgentName = "pathnet"
    """RL: path-evolving agent from the registry (pathnet, pathnet-moe, pathnet-hyper)."""
    steps: int = 200_000
    """RL: environment steps (all workers) spent on every task in every condition."""
    workers: int = 2
    """RL: worker processes, one path genome each."""
    eval_episodes: int = 10
    """RL: episodes of every evaluation (seeded env and action sampling); R holds mean returns."""
    eval_max_steps: int = 2000
    """RL: an evaluation episode stops after this many steps."""
    a3c: A3CConfig = field(default_factory=A3CConfig)
    pathnet: PathNetA3CConfig = field(default_factory=PathNetA3CConfig)
    moe: MoEConfig = field(default_factory=MoEConfig)
    hyper: HyperConfig = field(default_factory=HyperConfig)
    probe_size: int = 64
    """RL: observations in the fixed batch whose policy outputs show zero forgetting."""
    run_dir: str | None = None
    """Where to write the run (default: runs/continual-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory after its last finished task (other flags are ignored,
    except --grow and --progress)."""
    backend: WorkerBackend = "processes"
    """RL: where the A3C workers run: local processes sharing memory (Hogwild), or Ray actors
    that push gradients to a parameter-server actor (a local instance or a cluster;
    docs/ray.md)."""
    ray_address: str | None = None
    """The Ray cluster of the 'ray' backend: host:port of its head, ray://host:port, or auto
    (the one started on this machine with `ray start`); default: a new local instance."""
    checkpoint_every: int = 100_000
    """RL: environment steps between checkpoints inside a task (one is also written after every
    task of every condition)."""
    checkpoint_minutes: float = 5.0
    """RL: minutes between checkpoints inside a task (whichever of this and checkpoint-every
    comes first)."""
    image_every: int = 10
    """Images: generations between TensorBoard images of module usage."""
    threads: int = 1
    """Torch intra-op threads of this process."""
    progress: bool = True
    """Show a progress display."""

    def __post_init__(self) -> None:
        if len(self.tasks) < 2:
            raise ValueError(f"a sequence needs at least 2 tasks, got {list(self.tasks)}")
        images = [task for task in self.tasks if is_image_task(task)]
        if images and len(images) < len(self.tasks):
            others = ", ".join(task for task in self.tasks if task not in images)
            raise ValueError(
                f"--tasks mixes image tasks and env ids ({others}); one library needs one "
                f"family, and image tasks are <data set>/<classes> with the data set one of "
                f"{', '.join(DATASETS)}"
            )
        if images:  # bad ids fail here in one line; stored and printed as canonical_task spells
            self.tasks = tuple(canonical_task(task) for task in self.tasks)
        repeated = sorted({task for task in self.tasks if self.tasks.count(task) > 1})
        if repeated:
            raise ValueError(f"duplicate tasks in --tasks: {', '.join(repeated)}")
        if not self.conditions or len(set(self.conditions)) != len(self.conditions):
            raise ValueError("--conditions needs distinct names of pathnet, finetune, scratch")
        layer_kind(self.library_kind)
        get_agent(self.agent, evolves_paths=True)
        check_worker_backend(self.backend, self.ray_address)  # Ray: installed, address answers
        check_mode(self.a3c, self.backend)
        if min(self.max_generations, self.resolution, self.hidden, self.steps) <= 0:
            raise ValueError("max_generations, resolution, hidden and steps must be positive")
        sizes = (self.checkpoint_every, self.checkpoint_minutes, self.eval_max_steps,
                 self.probe_size)  # fmt: skip
        if min(sizes) <= 0:
            raise ValueError(
                "checkpoint_every, checkpoint_minutes, eval_max_steps and probe_size must be "
                "positive"
            )
        if min(self.eval_episodes, self.image_every) <= 0:
            raise ValueError("eval_episodes and image_every must be positive")
        if self.workers < 2 or self.threads <= 0:
            raise ValueError("need at least 2 workers and 1 thread")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {self.threshold}")


NEEDS = {"done": int, "reference": list, "models": dict, "grown": list, "probes": list, "R": dict,
         "records": dict, "occupancy": list, "modules_per_layer": list}  # fmt: skip
"""What a continual checkpoint holds (and the types of those values) to resume from."""


def open_run(
    cfg: ContinualConfig,
) -> tuple[ContinualConfig, Path, dict[str, Any] | None, Images | Games]:
    """A new run directory (after the tasks are checked), or the resumed run's."""
    if cfg.resume is None:
        family = load_family(cfg)  # bad ids and shapes fail before anything is written
        run_path = rd.prepare_run_dir(cfg.run_dir, "continual", cfg.seed)
        rd.save_config(run_path, cfg)
        return cfg, run_path, None, family
    run_path = Path(cfg.resume)
    saved = rd.load_config(run_path, ContinualConfig)
    grow = saved.grow or cfg.grow  # a run stopped by a full library can go on with --grow
    cfg = dataclasses.replace(saved, resume=cfg.resume, progress=cfg.progress, grow=grow)
    checkpoint = rd.load_checkpoint(run_path, "continual", NEEDS)  # refused: nothing changed
    if checkpoint is not None:  # the saved models (and a task it was inside), checked likewise
        models = [*checkpoint["models"].values(), (checkpoint.get("current") or {}).get("model")]
        for entry in filter(None, models):
            rd.require({"model": entry}, {"model": dict}, run_path, "continual")
            rd.require(entry, {"state": dict, "sizes": list}, run_path, "continual")
    family = load_family(cfg)
    if checkpoint is not None:  # its nested entries too, before config.json is rewritten
        check_state(cfg, family, checkpoint, run_path)
    if grow != saved.grow:
        rd.save_config(run_path, dataclasses.replace(cfg, resume=None))
    return cfg, run_path, checkpoint, family


def check_state(
    cfg: ContinualConfig, family: Images | Games, state: dict[str, Any], run_path: Path
) -> None:
    """A one-line ValueError naming the checkpoint entry (``done``, ``reference``, ``R``,
    ``records``, a condition's model in ``models``, ``current``) that does not fit this run:
    what :func:`main` reads of a resumed run, checked before any writer exists."""
    count, layers, active = len(cfg.tasks), family.layers, family.active

    def entry(key: str, fits: bool, detail: str) -> None:
        if not fits:
            raise rd.malformed(run_path, key, ValueError(detail))

    done = state["done"]
    entry("done", 0 <= done <= count * len(cfg.conditions), f"{done} of the run's trainings")
    reference = state["reference"]
    entry("reference", len(reference) == count, f"{len(reference)} values for {count} tasks")
    for c in cfg.conditions:
        matrix = state["R"].get(c)
        fits = isinstance(matrix, list) and len(matrix) == count and all(
            isinstance(row, list) and len(row) == count for row in matrix)  # fmt: skip
        entry("R", fits, f"no {count} x {count} matrix of condition {c!r}")
        records = state["records"].get(c)
        entry("records", isinstance(records, list), f"no list of condition {c!r}")
        for record in records:
            try:
                genome_to_path(record["genome"], layers, active)
            except (KeyError, RuntimeError, TypeError, ValueError) as error:
                raise rd.malformed(run_path, "records", error) from None
    models = {f"models[{c!r}]": saved for c, saved in state["models"].items()}
    current = state.get("current")
    if current is not None:
        entry("current", isinstance(current, dict) and isinstance(current.get("model"), dict),
              "no model of the task it was inside")  # fmt: skip
        models["current"] = current["model"]
    for key, saved in models.items():
        try:
            restore(family, saved)
        except ValueError as error:
            detail = str(error).partition(" (")[2].rstrip(")") or str(error)
            raise rd.malformed(run_path, key, ValueError(detail)) from None


def restore(family: Images | Games, saved: dict[str, Any]) -> nn.Module:
    """A model rebuilt from a checkpoint entry: grown to its layer sizes, then loaded."""
    model = family.build(0)
    try:
        for layer, size in enumerate(saved["sizes"]):
            extra = size - model.library.modules_per_layer[layer]
            if extra > 0:
                model.library.grow(layer, extra)
        model.load_state_dict(saved["state"])
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"checkpoint.pt's saved model does not fit this run ({detail})") from None
    return model


def prepare_pathnet_task(
    cfg: ContinualConfig, model: nn.Module, family: Images | Games, index: int, state: dict
) -> None:
    """Before PathNet's task ``index`` > 0: room for N free modules per layer (an error, or
    ``--grow``), then every unfrozen module re-initialised (PathNet's transfer)."""
    library = model.library
    lacking = cl.shortfall(library.frozen_mask(), family.active)
    if max(lacking) > 0:
        if not cfg.grow:
            raise ValueError(cl.full_layers_message(library.frozen_mask(), family.active,
                                                    cfg.tasks[index]))  # fmt: skip
        for layer, extra in enumerate(lacking):
            if extra > 0:  # only the layers short of N free modules, each by its shortfall
                library.grow(layer, extra)
        state["grown"].append({"before_task": index, "lacking": lacking})
    library.reinit_unfrozen()


def main(cfg: ContinualConfig) -> dict[str, Any]:
    """Run the sequence in every condition (or resume it); the summary written to summary.json."""
    cfg, run_path, state, family = open_run(cfg)
    if state is not None and state.get("summary") is not None:
        return state["summary"]
    torch.set_num_threads(cfg.threads)
    count, layers, active = len(cfg.tasks), family.layers, family.active
    probe_path = torch.arange(active).expand(layers, active)  # modules 0..N-1 in every layer
    plan = [(i, c) for i in range(count) for c in cfg.conditions]

    def seed_of(index: int, condition: str) -> int:
        return cfg.seed * 1000 + 10 * index + CONDITIONS.index(condition)

    if state is None:
        # b_j, GEM's FWT reference: task j's from-scratch network before any training.
        reference = [
            family.evaluate(family.build(seed_of(j, "scratch")), j, probe_path)
            for j in range(count)
        ]
        state = {
            "done": 0, "reference": reference, "models": {}, "grown": [], "probes": [],
            "R": {c: cl.empty_matrix(count) for c in cfg.conditions},
            "records": {c: [] for c in cfg.conditions},
            "occupancy": [], "modules_per_layer": [],
        }  # fmt: skip
    writer = rd.segment_writer(run_path, "")  # config and summary: every session writes all
    writer.add_text("config", f"```\n{json.dumps(dataclasses.asdict(cfg), indent=2)}\n```")
    console = Console()
    matrices: dict[str, SummaryWriter] = {}
    """Per condition, its R matrix and occupancy against the task index (run_path/<c>),
    opened at the first task this session does: a killed session's later rows are purged."""

    def path_of(condition: str, j: int) -> torch.Tensor:
        return genome_to_path(state["records"][condition][j]["genome"], layers, active)

    with family.progress(console) as progress:
        while state["done"] < len(plan):
            i, c = plan[state["done"]]
            saved, current = state["models"].get(c), state.get("current")
            if current is not None:  # interrupted inside this task: its model as it was then
                model = restore(family, current["model"])
            elif c == "scratch" or saved is None:
                model = family.build(seed_of(i, c))
            else:
                model = restore(family, saved)
            torch.manual_seed(seed_of(i, c) + 1)
            rng = random.Random(seed_of(i, c))
            if c == "pathnet" and i > 0 and current is None:
                prepare_pathnet_task(cfg, model, family, i, state)
            frozen_before = model.library.frozen_mask()

            def save_inside(partial: dict[str, Any]) -> None:
                state["current"] = partial
                rd.save_checkpoint(run_path, state)

            sizes = model.library.modules_per_layer
            step = Step(i, c, sizes, rng, run_path, progress, current, save_inside)
            record = family.train(model, step)
            state["current"] = None
            path = genome_to_path(record["genome"], layers, active)
            if c == "pathnet":
                record.update(cl.reuse_of_frozen(path, frozen_before))
                model.library.freeze(path, family.names[i])
                state["probes"].append(family.probe(model, i, path))
                state["occupancy"].append(cl.occupancy(model.library.frozen_mask()))
                state["modules_per_layer"].append(model.library.modules_per_layer)
            state["records"][c].append(record)
            row = state["R"][c][i]
            if c not in matrices:
                matrices[c] = rd.segment_writer(run_path, c, i)
            for j in range(count):
                if c == "scratch":  # independent networks: earlier rows stand, later untrained
                    row[j] = state["R"][c][j][j] if j < i else state["reference"][j]
                    if j == i:
                        row[j] = family.evaluate(model, j, path)
                else:
                    row[j] = family.evaluate(model, j, path_of(c, j) if j <= i else probe_path)
                matrices[c].add_scalar(f"charts/R/task{j}", row[j], i)
            if c == "pathnet":
                for layer, share in enumerate(state["occupancy"][-1]):
                    matrices[c].add_scalar(f"evolution/occupancy/layer{layer}", share, i)
            if c != "scratch":
                sizes = model.library.modules_per_layer
                state["models"][c] = {"state": model.state_dict(), "sizes": sizes}
            state["done"] += 1
            rd.save_checkpoint(run_path, state)
            matrices[c].add_figure("R", matrix_figure(state["R"][c], c, cfg.tasks), i)

    identical = None
    if "pathnet" in cfg.conditions:  # the frozen paths' outputs, again, after the whole sequence
        model = restore(family, state["models"]["pathnet"])
        identical = [
            bool(torch.equal(family.probe(model, j, path_of("pathnet", j)), state["probes"][j]))
            for j in range(count)
        ]
    summary = summarise(cfg, state, identical)
    rd.write_json(run_path / rd.SUMMARY, summary)
    plot(run_path / "continual.png", summary)
    for c, condition in summary["conditions"].items():
        for key in ("acc", "bwt", "fwt"):
            writer.add_scalar(f"summary/{c}_{key}", condition[key])
    writer.close()
    for matrix_writer in matrices.values():
        matrix_writer.close()
    state["summary"] = summary
    rd.save_checkpoint(run_path, state)
    print_table(console, summary, run_path)
    return summary


def summarise(cfg: ContinualConfig, state: dict[str, Any], identical: list[bool] | None) -> dict:
    """summary.json: R, ACC, BWT, FWT and per-task records per condition; occupancy, growth."""
    conditions = {}
    for c in cfg.conditions:
        matrix = state["R"][c]
        conditions[c] = {
            "R": matrix,
            **cl.summarise_matrix(matrix, state["reference"]),
            "tasks": [
                {key: value for key, value in record.items() if key != "genome"}
                | {"best_path": record["genome"]}
                for record in state["records"][c]
            ],
        }
    summary: dict[str, Any] = {
        "tasks": list(cfg.tasks),
        "measure": "held-out accuracy" if is_image_task(cfg.tasks[0]) else "mean return",
        "fwt_reference": state["reference"],
        "conditions": conditions,
        **{key: {c: conditions[c][key] for c in conditions} for key in ("acc", "bwt", "fwt")},
    }
    if "pathnet" in conditions:
        records = state["records"]["pathnet"]
        summary.update(
            module_reuse=[record["module_reuse"] for record in records],
            occupancy=state["occupancy"],
            modules_per_layer=state["modules_per_layer"],
            grown=state["grown"],
            pathnet_outputs_identical=identical,
        )
    return summary


def print_table(console: Console, summary: dict[str, Any], run_path: Path) -> None:
    table = Table(title=f"{len(summary['tasks'])} tasks in sequence ({summary['measure']})")
    for column in ("condition", "ACC", "BWT", "FWT", "diagonal R(j, j)"):
        table.add_column(column, justify="right")
    for name, condition in summary["conditions"].items():
        diagonal = " ".join(f"{row[j]:.2f}" for j, row in enumerate(condition["R"]))
        table.add_row(
            name, f"{condition['acc']:.3f}", f"{condition['bwt']:+.3f}",
            f"{condition['fwt']:+.3f}", diagonal,
        )  # fmt: skip
    console.print(table)
    if "occupancy" in summary:
        console.print(f"PathNet occupancy after the last task: {summary['occupancy'][-1]}; "
                      f"outputs identical: {summary['pathnet_outputs_identical']}")  # fmt: skip
    console.print(f"Run: {run_path}")


if __name__ == "__main__":
    run_cli(main, ContinualConfig, description=__doc__.split("\n\n")[0])
