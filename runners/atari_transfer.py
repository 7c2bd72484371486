"""PathNet-A3C transfer between two games: learn A, freeze its best path, learn B faster.

Fernando et al. 2017, arXiv:1701.08734, section 3.3 (Atari) with A3C workers (Mnih et al. 2016,
arXiv:1602.01783). Four training phases of ``--steps`` environment steps each:

* ``pathnet_a``: PathNet-A3C on game A (fresh library, random paths);
* ``pathnet_b``: A's best path frozen, every other module and the population re-initialised,
  a new head, PathNet-A3C on game B — the **pathnet** condition;
* ``scratch``: PathNet-A3C on B with a fresh library — the from-scratch control;
* ``finetune``: A's network (its library after phase A, every worker on A's best path, not
  frozen) fine-tuned on B with a new head, no evolution — the fine-tuning control.

Speed-up = steps the control needs to reach a return threshold on B / steps PathNet needs; the
area ratio = PathNet's area under B's learning curve / the control's. Over seeds and every pair
of a set of games: :mod:`pathevo.runners.transfer_matrix` (``--repeats K``).
Games with different channel counts (MinAtar) share the library by zero-padding channels.
Run ``pathevo atari_transfer --help``; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.curves import curve_auc, final_mean_return, learning_curve, steps_to_threshold
from pathevo.agents.hyper_agents import HyperConfig
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.pathnet_a3c import PathNetA3C, PathNetA3CConfig, common_input_shape
from pathevo.agents.phase import (
    WORKER_BACKENDS,
    Phase,
    check_mode,
    check_worker_backend,
    env_spaces,
    new_population,
)
from pathevo.agents.phase_log import PhaseLog, moe_load_cv2
from pathevo.agents.phase_reporters import make_progress
from pathevo.agents.registry import agent_names, get_agent
from pathevo.evolution.async_tournament import SharedPopulation
from pathevo.evolution.operators import check_genome, genome_to_path
from pathevo.evolution.transfer import begin_transfer, module_reuse, reused_modules
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import choice_of, run_cli
from pathevo.runners.plumbing.plots import path_grid, plot_learning_curves, plot_transfer_paths

AgentName = choice_of(agent_names(evolves_paths=True))
WorkerBackend = choice_of(list(WORKER_BACKENDS))

PHASES = ("pathnet_a", "pathnet_b", "scratch", "finetune")
CONDITIONS = {"pathnet": "pathnet_b", "scratch": "scratch", "finetune": "finetune"}
"""Condition on task B -> the phase that trains it."""


@dataclass
class TransferConfig:
    """PathNet-A3C transfer from game A to game B, with from-scratch and fine-tuning controls."""

    env_a: str = "MinAtar/Breakout-v1"
    """Source game id (task A)."""
    env_b: str = "MinAtar/SpaceInvaders-v1"
    """Target game id (task B)."""
    workers: int = 2
    """Worker processes, one path genome each."""
    steps: int = 500_000
    """Budget of every phase: environment steps summed over all workers."""
    seed: int = 0
    """Seed of everything; phase p uses seed + 100 p, its worker r seed + 100 p + r."""
    threshold: float | None = None
    """Mean return (last 20 episodes) on B that counts as learned; None: see threshold-fraction."""
    threshold_fraction: float = 0.5
    """Without --threshold: lowest + fraction x (highest - lowest) of the three B curves."""
    agent: AgentName = "pathnet"
    """Path-evolving agent from the registry: pathnet, or pathnet-moe (an MoE last layer)."""
    a3c: A3CConfig = field(default_factory=A3CConfig)
    pathnet: PathNetA3CConfig = field(default_factory=PathNetA3CConfig)
    moe: MoEConfig = field(default_factory=MoEConfig)
    hyper: HyperConfig = field(default_factory=HyperConfig)
    run_dir: str | None = None
    """Where to write the run (default: runs/atari_transfer-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory from its last checkpoint (other flags are ignored)."""
    backend: WorkerBackend = "processes"
    """Where the A3C workers run: local processes sharing memory (Hogwild), or Ray actors
    that push gradients to a parameter-server actor (a local instance or a cluster;
    docs/ray.md)."""
    ray_address: str | None = None
    """The Ray cluster of the 'ray' backend: host:port of its head, ray://host:port, or auto
    (the one started on this machine with `ray start`); default: a new local instance."""
    max_restarts: int = 3
    """Restarts allowed per worker and phase (a crashed game engine, a killed process): the
    worker starts again from its slot; one more failure stops the run. Each worker's log and
    anything its engine writes are in <run-dir>/workers/<phase>/worker-<rank>/."""
    checkpoint_every: int = 100_000
    """Environment steps between checkpoints (one is also written after every phase)."""
    checkpoint_minutes: float = 5.0
    """Minutes of training between checkpoints (whichever of this and checkpoint-every comes
    first)."""
    progress: bool = True
    """Show a progress display."""

    def __post_init__(self) -> None:
        get_agent(self.agent, evolves_paths=True)
        check_worker_backend(self.backend, self.ray_address)  # Ray: installed, address answers
        check_mode(self.a3c, self.backend)
        if self.workers < 2:
            raise ValueError("PathNet-A3C needs at least 2 workers (one genome each)")
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be non-negative, got {self.max_restarts}")
        if min(self.steps, self.checkpoint_every, self.checkpoint_minutes) <= 0:
            raise ValueError("steps, checkpoint_every and checkpoint_minutes must be positive")
        if not 0.0 < self.threshold_fraction <= 1.0:
            raise ValueError(
                f"threshold_fraction must lie in (0, 1], got {self.threshold_fraction}"
            )


def task_names(cfg: TransferConfig) -> tuple[str, str]:
    """Head names: distinct even if A and B are the same game."""
    return f"A:{cfg.env_a}", f"B:{cfg.env_b}"


def setup_phase(
    phase: str,
    cfg: TransferConfig,
    shape: tuple[int, ...],
    actions: tuple[int, int],
    state: dict[str, Any],
) -> tuple[PathNetA3C, SharedPopulation, str]:
    """The phase's model (library + heads), population and the task it trains."""
    seed = cfg.seed + 100 * PHASES.index(phase)
    torch.manual_seed(seed)
    task_a, task_b = task_names(cfg)
    model = get_agent(cfg.agent, evolves_paths=True).build(cfg, shape, 0)
    if phase != "scratch":
        model.add_task(task_a, actions[0])
    if phase in ("pathnet_b", "finetune"):
        model.load_state_dict(state["after_a"])
    if phase == "pathnet_b":
        path_a = genome_to_path(state["best_a"], cfg.pathnet.layers, cfg.pathnet.active)
        begin_transfer(model.library, path_a, task_a)
    if phase != "pathnet_a":
        model.add_task(task_b, actions[1])
    if phase == "finetune":
        population = SharedPopulation.create([state["best_a"]] * cfg.workers)
    else:
        population = new_population(cfg.pathnet, cfg.workers, seed)
    return model, population, task_a if phase == "pathnet_a" else task_b


_UNFIT = (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError)
"""What building a phase from checkpoint entries of other shapes or contents raises."""


def prepare_phase(
    cfg: TransferConfig,
    state: dict[str, Any],
    shape: tuple[int, ...],
    actions: tuple[int, int],
    run_path: Path,
) -> tuple[PathNetA3C, SharedPopulation, str, Phase, int]:
    """Phase ``state["phase"]`` ready to train (restored from its mid-phase checkpoint, if
    any) and its first step; a one-line ValueError naming the checkpoint entry (``after_a``,
    ``best_a``, ``current``) that does not fit this run: called before anything is written."""
    name = PHASES[state["phase"]]
    if name != "pathnet_a":  # A's network and best path, recorded when phase A ended
        for key in ("after_a", "best_a"):
            if state[key] is None:
                raise rd.malformed(run_path, key, ValueError("None after phase pathnet_a"))
        try:
            check_genome(state["best_a"], cfg.pathnet.layers, cfg.pathnet.active,
                         cfg.pathnet.modules)  # fmt: skip
        except (TypeError, ValueError) as error:
            raise rd.malformed(run_path, "best_a", error) from None
    try:
        model, population, task = setup_phase(name, cfg, shape, actions, state)
    except _UNFIT as error:
        raise rd.malformed(run_path, "after_a", error) from None
    seed = cfg.seed + 100 * state["phase"]
    phase = Phase.create(
        model, cfg.a3c, cfg.workers, seed, population=population, pathnet=cfg.pathnet
    )
    start = 0
    if state["current"] is not None:  # resuming inside this phase
        try:
            model.load_state_dict(state["current"]["model"])
            phase.restore(state["current"])
        except _UNFIT as error:
            raise rd.malformed(run_path, "current", error) from None
        start = int(phase.steps.sum()) + 1
    return model, population, task, phase, start


def train_phase(
    cfg: TransferConfig,
    state: dict[str, Any],
    shape: tuple[int, ...],
    actions: tuple[int, int],
    run_path: Path,
    progress: Progress,
    prepared: tuple[PathNetA3C, SharedPopulation, str, Phase, int] | None = None,
) -> None:
    """Train phase ``state["phase"]`` (from its mid-phase checkpoint, if any; ``prepared``: what
    :func:`prepare_phase` returned for it); record its log, best path and, after phase A, A's
    network and best path in ``state``. Its TensorBoard events go to ``run_path/<phase>``
    (:func:`pathevo.runners.plumbing.run_dir.segment_writer`)."""
    name = PHASES[state["phase"]]
    model, population, task, phase, start = prepared or prepare_phase(
        cfg, state, shape, actions, run_path
    )
    env_id = cfg.env_a if name == "pathnet_a" else cfg.env_b
    writer = rd.segment_writer(run_path, name, start)

    def save() -> None:
        state["current"] = {"model": model.state_dict(), **phase.state()}
        rd.save_checkpoint(run_path, state)

    reporters = phase.reporters(
        writer=writer, name=name, progress=progress, checkpoint=save,
        checkpoint_every=cfg.checkpoint_every, checkpoint_minutes=cfg.checkpoint_minutes,
    )  # fmt: skip
    phase.run(
        get_agent(cfg.agent).worker, env_id=env_id, task=task, budget=cfg.steps,
        evolve=name != "finetune", reporters=reporters, backend=cfg.backend,
        ray_address=cfg.ray_address, max_restarts=cfg.max_restarts,
        workdir=run_path / "workers" / name,
    )  # fmt: skip
    writer.close()
    state["logs"][name] = dataclasses.asdict(phase.log)
    state["paths"][name] = population.genomes[population.best()].tolist()
    if name == "pathnet_a":
        state["after_a"] = copy.deepcopy(model.state_dict())  # tensors and layers' extra state
        state["best_a"] = state["paths"][name]


NEEDS = {"phase": int, "logs": dict, "paths": dict, "after_a": (dict, type(None)),
         "best_a": (list, type(None)), "current": (dict, type(None))}  # fmt: skip
"""What an atari_transfer checkpoint holds (and the types of those values) to resume from."""
PHASE_NEEDS = {"model": dict, "optimizer": dict, "steps": torch.Tensor, "log": dict}
"""What its ``current`` (a phase it was inside) holds."""


def load_state(run_path: Path) -> dict[str, Any] | None:
    """The run's checkpoint, None if it has none; a one-line ValueError if it is refused or
    lacks what a resume needs (checked before anything runs)."""
    state = rd.load_checkpoint(run_path, "atari_transfer", NEEDS)
    if state is not None and state["current"] is not None:
        rd.require(state["current"], PHASE_NEEDS, run_path, "atari_transfer")
    return state


def main(cfg: TransferConfig, runner: str = "atari_transfer") -> dict[str, Any]:
    """Run the four phases (or resume them) and return the summary written to summary.json.

    ``runner`` names a new run directory: ``runs/<runner>-<time>-s<seed>``.
    """
    checkpoint = None
    if cfg.resume is not None:
        run_path = Path(cfg.resume)
        cfg = dataclasses.replace(rd.load_config(run_path, TransferConfig), resume=cfg.resume)
        checkpoint = load_state(run_path)  # refused or malformed: nothing has run
        if checkpoint is not None and checkpoint.get("summary") is not None:
            return checkpoint["summary"]
    shape_a, actions_a = env_spaces(cfg.env_a, cfg.seed)
    shape_b, actions_b = env_spaces(cfg.env_b, cfg.seed)
    shape = common_input_shape(shape_a, shape_b)
    if cfg.resume is None:  # bad ids and shapes fail before any write
        run_path = rd.prepare_run_dir(cfg.run_dir, runner, cfg.seed)
        rd.save_config(run_path, cfg)
    state: dict[str, Any] = checkpoint or {
        "phase": 0, "logs": {}, "paths": {}, "after_a": None, "best_a": None, "current": None,
    }  # fmt: skip
    if not 0 <= state["phase"] <= len(PHASES):
        raise rd.malformed(run_path, "phase", ValueError(f"no phase {state['phase']}"))
    # The first phase to train, built (and restored) before any writer: a checkpoint whose
    # entries do not fit is refused with nothing written.
    prepared = prepare_phase(cfg, state, shape, (actions_a, actions_b), run_path) if (
        state["phase"] < len(PHASES)) else None  # fmt: skip

    writer = rd.segment_writer(run_path, "")  # config and summary: every session writes all
    writer.add_text("config", f"```\n{rd.json.dumps(dataclasses.asdict(cfg), indent=2)}\n```")
    console = Console()
    with make_progress(console, cfg.progress) as progress:
        while state["phase"] < len(PHASES):
            train_phase(cfg, state, shape, (actions_a, actions_b), run_path, progress, prepared)
            prepared = None
            state["phase"] += 1
            state["current"] = None
            rd.save_checkpoint(run_path, state)

    summary = summarise(cfg, state)
    rd.write_json(run_path / rd.SUMMARY, summary)
    plot(cfg, run_path, summary)
    for name, condition in summary["conditions"].items():
        writer.add_scalar(f"summary/{name}_auc", condition["auc"])
    writer.close()
    state["summary"] = summary
    rd.save_checkpoint(run_path, state)
    print_table(console, summary, run_path)
    return summary


def summarise(cfg: TransferConfig, state: dict[str, Any]) -> dict[str, Any]:
    """Curves, steps to threshold, AUC and speed-ups of the three B conditions; module reuse."""
    episodes = {phase: state["logs"][phase]["episodes"] for phase in PHASES}
    full = {
        name: learning_curve(episodes[phase], points=10**9, full_window=True)
        for name, phase in CONDITIONS.items()
    }
    threshold = cfg.threshold
    if threshold is None:
        values = [value for curve in full.values() for _, value in curve] or [0.0]
        low, high = min(values), max(values)
        threshold = low + cfg.threshold_fraction * (high - low)
    conditions = {}
    for name, phase in CONDITIONS.items():
        reached = steps_to_threshold(full[name], threshold)
        conditions[name] = {
            "curve": learning_curve(episodes[phase]),
            "steps_to_threshold": reached,
            "solved": reached is not None,
            "auc": curve_auc(full[name], cfg.steps),
            "final_mean_return": final_mean_return(episodes[phase]),
            "best_path": state["paths"][phase],
        }
        phase_log = PhaseLog(**state["logs"][phase])
        if phase_log.moe:
            conditions[name]["moe_load_cv2"] = moe_load_cv2(phase_log)

    def needed(name: str) -> int:  # a condition that never reached the threshold used it all
        return conditions[name]["steps_to_threshold"] or cfg.steps

    layers, active = cfg.pathnet.layers, cfg.pathnet.active
    path_a = genome_to_path(state["best_a"], layers, active)
    path_b = genome_to_path(state["paths"]["pathnet_b"], layers, active)
    return {
        "env_a": cfg.env_a,
        "env_b": cfg.env_b,
        "steps_per_phase": cfg.steps,
        "threshold": threshold,
        "conditions": conditions,
        "speedup_vs_scratch": needed("scratch") / needed("pathnet"),
        "speedup_vs_finetune": needed("finetune") / needed("pathnet"),
        "area_ratio_vs_scratch": area_ratio(conditions, "pathnet", "scratch"),
        "area_ratio_vs_finetune": area_ratio(conditions, "pathnet", "finetune"),
        "worker_restarts": sum(state["logs"][phase]["worker_restarts"] for phase in PHASES),
        "module_reuse": module_reuse(path_b, path_a),
        "reused_modules": reused_modules(path_b, path_a),
        "task_a": {
            "curve": learning_curve(episodes["pathnet_a"]),
            "final_mean_return": final_mean_return(episodes["pathnet_a"]),
            "best_path": state["best_a"],
        },
        "seconds": sum(state["logs"][phase]["seconds"] for phase in PHASES),
    }


def area_ratio(conditions: dict[str, dict[str, Any]], faster: str, control: str) -> float | None:
    """``faster``'s area under the learning curve over ``control``'s (the mean return over the
    phase; None unless both are positive: a ratio of areas needs positive returns)."""
    a, b = conditions[faster]["auc"], conditions[control]["auc"]
    return a / b if a > 0 and b > 0 else None  # False for NaN too


def plot(cfg: TransferConfig, run_path: Path, summary: dict[str, Any]) -> None:
    curves = {name: c["curve"] for name, c in summary["conditions"].items()}
    plot_learning_curves(
        run_path / "learning_curves.png", curves,
        f"{cfg.env_b} after {cfg.env_a}", summary["threshold"],
    )  # fmt: skip
    layers, active, modules = cfg.pathnet.layers, cfg.pathnet.active, cfg.pathnet.modules
    grid_a = path_grid(
        genome_to_path(summary["task_a"]["best_path"], layers, active).tolist(), modules
    )
    path_b = summary["conditions"]["pathnet"]["best_path"]
    grid_b = path_grid(genome_to_path(path_b, layers, active).tolist(), modules)
    # The helper colours its bars grey, grey, green: the controls first, PathNet last.
    bars = {
        name: (float(summary["conditions"][name]["steps_to_threshold"] or cfg.steps), 0.0)
        for name in ("scratch", "finetune", "pathnet")
    }
    short_a, short_b = cfg.env_a.split("/")[-1], cfg.env_b.split("/")[-1]
    title = f"{short_a} → {short_b}: reuse {summary['module_reuse']:.0%}"
    plot_transfer_paths(
        run_path / "paths.png", [(title, grid_a, grid_b)], bars, "steps to threshold"
    )


def print_table(console: Console, summary: dict[str, Any], run_path: Path) -> None:
    table = Table(
        title=f"{summary['env_b']} after {summary['env_a']}: "
        f"steps to mean return {summary['threshold']:.2f}"
    )
    for column in ("condition", "steps to threshold", "AUC", "final mean return"):
        table.add_column(column, justify="right")
    for name, condition in summary["conditions"].items():
        reached = condition["steps_to_threshold"]
        table.add_row(
            name,
            f"{reached:,}" if reached is not None else f"> {summary['steps_per_phase']:,}",
            f"{condition['auc']:.2f}",
            f"{condition['final_mean_return']:.2f}",
        )
    console.print(table)
    areas = [summary["area_ratio_vs_scratch"], summary["area_ratio_vs_finetune"]]
    area_text = "" if None in areas else (
        f" (area ratio {areas[0]:.2f}x vs scratch, {areas[1]:.2f}x vs fine-tuning)")  # fmt: skip
    console.print(
        f"PathNet speed-up to the threshold: {summary['speedup_vs_scratch']:.2f}x vs scratch, "
        f"{summary['speedup_vs_finetune']:.2f}x vs fine-tuning{area_text}; "
        f"module reuse {summary['module_reuse']:.0%}.  Run: {run_path}"
    )


if __name__ == "__main__":
    run_cli(main, TransferConfig, description=__doc__.split("\n\n")[0])
