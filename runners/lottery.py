"""Lottery tickets: iterative magnitude pruning of an agent's heads, with both controls.

Frankle & Carbin 2019, arXiv:1803.03635: train, prune p of the remaining weights by magnitude,
rewind the survivors to their initial values, retrain; repeat. Frankle et al. 2020,
arXiv:1912.05671: rewind to the weights after k steps instead (``--rewind-to k``). Yu et al.
2020, arXiv:1906.02768: tickets exist in RL and beat random sparse networks. Every round trains
the ticket and, at the same sparsity and from the same mask, the random-re-initialisation
control (``reinit``) and the random-mask control (``random_mask``: rewound weights, a random mask
with the ticket's per-layer sparsity), each with the same budget and seed; ``--conditions`` adds
Vischer et al. 2021's (arXiv:2105.01648) ``permuted`` and ``random_reinit``.

A3C agents (``--agent a3c``, ``pathnet``, …) on any id ``pathevo.envs.make_env`` knows; an image
task (``--env-id digits/3v5``, ``fashion/coat-v-shirt``, the ten-class ``fashion/all``) trains
the same network as a classifier (returns are training accuracies; test accuracy and the
early-stopping iteration are measured too), or Frankle & Carbin's LeNet-300-100
(``--agent lenet --env-id fashion/all``).
Run ``pathevo lottery --help``; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
import tyro
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.curves import curve_auc, final_mean_return, learning_curve
from pathevo.agents.hyper_agents import HyperConfig
from pathevo.agents.lottery_agents import (
    CONDITION_STARTS,
    DigitsConfig,
    PruneConfig,
    image_splits,
    image_task,
    keep_zero_worker,
    prune_fractions,
    prune_targets,
    train_classifier,
)
from pathevo.agents.moe_agents import MoEConfig
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.phase import Phase, env_spaces
from pathevo.agents.phase_log import PhaseLog
from pathevo.agents.phase_reporters import make_progress
from pathevo.agents.registry import agent_names, get_agent
from pathevo.envs.digits import is_image_task
from pathevo.modules import pruning
from pathevo.runners.figures.lottery import plot_early_stopping, plot_lottery
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import agent_help, choice_of, flags_given, run_cli
from pathevo.runners.plumbing.stats import mean_interval

TRAINERS = ("a3c", "supervised")
"""The agents this runner trains: A3C's, and classifiers only image tasks train (lenet)."""
AGENT_NAMES = [name for trainer in TRAINERS for name in agent_names(trainer=trainer)]
AgentName = Annotated[choice_of(AGENT_NAMES), tyro.conf.arg(help=agent_help(AGENT_NAMES))]
ConditionName = choice_of(list(CONDITION_STARTS))
CONDITIONS = ("ticket", "reinit", "random_mask")
"""The conditions every round trains by default."""
MEASURES = ("test_accuracy", "final_test_accuracy", "early_stop_step", "validation_loss")
"""What an image-task training measures besides its training accuracy (summarised the same)."""


@dataclass
class LotteryConfig:
    """Iterative magnitude pruning with rewinding; defaults: CartPole to 87.5% head sparsity."""

    env_id: str = "CartPole-v1"
    """Environment id (see `python -m pathevo.envs`), a binary image task (digits/3v5,
    mnist/3v5, fashion/coat-v-shirt or fashion/4v6, kmnist/o-v-ki, emnist/3v5), or a data set's
    ten-class task (digits/all, fashion/all, mnist/all, …)."""
    agent: AgentName = "a3c"
    rounds: int = 3
    """R: pruning rounds (each trains the ticket and the controls)."""
    prune_fraction: float = 0.5
    """p: fraction of the remaining target weights pruned per round (sparsity 1-(1-p)^r)."""
    output_prune_fraction: float | None = None
    """Fraction of the output layers' remaining weights pruned per round (the policy/value or
    classifier layers; Frankle & Carbin's LeNet: 0.1); None: prune-fraction."""
    conditions: tuple[ConditionName, ...] = CONDITIONS
    """What every round trains from its mask: ticket (needed: the next round prunes it),
    reinit, random_mask, permuted (Vischer et al. 2021: the ticket's rewound weights shuffled
    within each layer among its surviving positions), random_reinit (a random mask,
    re-initialised)."""
    steps: int = 80_000
    """Budget of every training: environment steps over all workers (image tasks: minibatches)."""
    rewind_to: str = "init"
    """Rewind point: init, or k: the weights after k environment steps (image tasks: minibatches)
    of the dense training; rewound trainings then run from step k to --steps."""
    prune: PruneConfig = field(default_factory=PruneConfig)
    workers: int = 2
    """Worker processes (unused for image tasks)."""
    seed: int = 0
    """Seed of everything; controls of round r use seed + 1000 r for their random draw."""
    repeats: int = 1
    """Independent runs of the whole pipeline (dense training, masks, every control) with seeds
    seed, seed + 1, …; levels report the means over them with 95% intervals."""
    a3c: A3CConfig = field(
        default_factory=lambda: A3CConfig(
            optimizer="adam", lr=2e-3, t_max=5, envs_per_worker=4, hidden=256
        )
    )
    pathnet: PathNetA3CConfig = field(
        default_factory=lambda: PathNetA3CConfig(
            layers=2,
            modules=4,
            active=2,
            units=64,
            last_reduce="mean",
            episodes_per_evaluation=20,
            rivals=1,
        )  # fmt: skip
    )
    moe: MoEConfig = field(default_factory=MoEConfig)
    hyper: HyperConfig = field(default_factory=HyperConfig)
    digits: DigitsConfig = field(default_factory=DigitsConfig)
    data_dir: str | None = None
    """Image tasks: directory of the data set's IDX files (or of its sub-folder, such as
    fashion-mnist/); default: $PATHEVO_DATA, then /usr/share/datasets. digits/ needs none."""
    run_dir: str | None = None
    """Where to write the run (default: runs/lottery-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory: finished trainings are not redone, an RL training
    goes on from its last checkpoint (an image-task training, seconds long, starts again)."""
    checkpoint_every: int = 20_000
    """Environment steps between checkpoints inside an RL training."""
    checkpoint_minutes: float = 5.0
    """Minutes between checkpoints inside an RL training (whichever of this and
    checkpoint-every comes first)."""
    progress: bool = True
    """Show a progress display."""
    return_floor: float = 0.0
    """RL: the environment's lowest return (Acrobot-v1: -500), from which a condition's return
    is measured as a fraction of the dense return (summary: ``holds_95``)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.prune_fraction < 1.0:
            raise ValueError(f"prune_fraction must lie in (0, 1), got {self.prune_fraction}")
        sizes = (self.rounds, self.steps, self.workers, self.repeats, self.checkpoint_every,
                 self.checkpoint_minutes)  # fmt: skip
        if min(sizes) <= 0:
            raise ValueError(
                "rounds, steps, workers, repeats, checkpoint_every and checkpoint_minutes must "
                "be positive"
            )
        if self.output_prune_fraction is not None:
            if not 0.0 < self.output_prune_fraction < 1.0:
                raise ValueError(
                    f"output_prune_fraction must lie in (0, 1), got {self.output_prune_fraction}"
                )
            if self.prune.ranking == "global" and self.output_fraction != self.prune_fraction:
                raise ValueError("output_prune_fraction needs --prune.ranking layer")
        unknown = [name for name in self.conditions if name not in CONDITION_STARTS]
        if (
            unknown
            or "ticket" not in self.conditions
            or len(set(self.conditions)) < len(self.conditions)
        ):
            raise ValueError(
                f"conditions must name ticket and others of {', '.join(CONDITION_STARTS)} once "
                f"each, got {' '.join(self.conditions)}"
            )
        if self.rewind_steps >= self.steps:
            raise ValueError(f"rewind_to {self.rewind_to} must be below steps {self.steps}")
        agent = get_agent(self.agent)
        if agent.trainer not in TRAINERS:
            raise ValueError(f"unknown agent {self.agent!r} here; choose {', '.join(AGENT_NAMES)}")
        task = image_task(self.env_id)  # a bad image task id fails here, in one line
        if task is None:  # an image task trains in this process
            if agent.trainer != "a3c":
                raise ValueError(
                    f"{self.agent} trains image tasks only, such as --env-id digits/all or "
                    "fashion/all"
                )
            agent.check_workers(self.workers)
        else:
            self.env_id = task  # stored and printed as canonical_task spells it
        if self.prune.scope == "library" and not agent.evolves_paths:
            raise ValueError("--prune.scope library needs a path agent (pathnet, …)")

    @property
    def seeds(self) -> list[int]:
        """The seed of every repeat."""
        return list(range(self.seed, self.seed + self.repeats))

    @property
    def output_fraction(self) -> float:
        """The fraction of the output layers' remaining weights a round prunes."""
        if self.output_prune_fraction is None:
            return self.prune_fraction
        return self.output_prune_fraction

    @property
    def rewind_steps(self) -> int:
        if self.rewind_to == "init":
            return 0
        if not self.rewind_to.isdigit():
            raise ValueError(f"rewind_to must be init or a step count, got {self.rewind_to!r}")
        return int(self.rewind_to)


def build_model(
    cfg: LotteryConfig, task: str, obs_shape: tuple[int, ...], num_actions: int
) -> tuple[nn.Module, list[pruning.PruneTarget]]:
    """The agent's network with the task head added and all-ones masks on its targets."""
    model = get_agent(cfg.agent).build_for_task(cfg, obs_shape, num_actions, task)
    targets = prune_targets(model, cfg.prune.scope)
    pruning.attach_masks(targets)
    return model, targets


def train(
    cfg: LotteryConfig, model: nn.Module, *, name: str, start: int, run_path: Path,
    progress: Any, on_rewind_point: Any = None, resume: dict[str, Any] | None = None,
    save_inside: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Train ``model`` from step ``start`` to ``cfg.steps``; its final mean return and curve.

    ``on_rewind_point()`` is called once the model has done ``cfg.rewind_steps`` steps. An RL
    training hands ``save_inside`` its state (model, optimiser, counters, population, log)
    every ``checkpoint_every`` steps or ``checkpoint_minutes``, and goes on from ``resume``,
    such a state; an image-task training a killed run left unfinished is done again from
    ``start``.
    Its TensorBoard events go to ``run_path/<name>``, a killed session's later ones purged.
    """
    rl = not is_image_task(cfg.env_id)
    first = int(resume["steps"].sum()) + 1 if rl and resume is not None else start
    with rd.segment_writer(run_path, name, first) as writer:
        return train_logged(cfg, model, name, start, writer, progress, on_rewind_point,
                            resume, save_inside)  # fmt: skip


def train_logged(
    cfg: LotteryConfig, model: nn.Module, name: str, start: int, writer: SummaryWriter,
    progress: Any, on_rewind_point: Any, resume: dict[str, Any] | None, save_inside: Any,
) -> dict[str, Any]:  # fmt: skip
    """:func:`train`, writing to ``writer``."""
    log, began = PhaseLog(), time.monotonic()
    if is_image_task(cfg.env_id):
        data = image_splits(cfg.env_id, cfg.data_dir, cfg.digits.resolution,
                            cfg.digits.validation)  # fmt: skip
        bar = progress.add_task(name, total=cfg.steps, mean=float("nan"))

        def on_batch(*, step: int, accuracy: float) -> None:
            log.episodes.append((step, accuracy))
            if step % 50 == 0:
                mean = final_mean_return(log.episodes)
                writer.add_scalar("charts/accuracy_20", mean, step)
                progress.update(bar, completed=step, mean=mean)
            if on_rewind_point is not None and step == cfg.rewind_steps:
                on_rewind_point()

        if on_rewind_point is not None and cfg.rewind_steps == 0:
            on_rewind_point()
        measured = train_classifier(model, data, cfg.digits, start, cfg.steps, cfg.seed,
                                    cfg.pathnet.active, on_batch=on_batch)  # fmt: skip
        writer.add_scalar("charts/test_accuracy", measured["test_accuracy"],
                          measured["early_stop_step"])  # fmt: skip
        return {**result(log, cfg.steps, time.monotonic() - began), **measured}
    agent = get_agent(cfg.agent)
    population = agent.population(cfg.pathnet, cfg.workers, cfg.seed)
    phase = Phase.create(
        model, cfg.a3c, cfg.workers, cfg.seed, population=population, pathnet=cfg.pathnet
    )
    steps, log = phase.steps, phase.log
    steps[0] = start  # a rewound training counts from the rewind point k
    budgets = [cfg.steps]
    pending = [on_rewind_point is not None and cfg.rewind_steps > 0]  # θk not yet taken
    if pending[0]:
        budgets = [cfg.rewind_steps, cfg.steps]  # stop at k for the snapshot, then go on
    elif on_rewind_point is not None and resume is None:
        on_rewind_point()

    def take_rewind_point() -> None:
        """θk, once the training has done k steps (at most once; before any checkpoint
        past k, so a resumed training past k always finds it)."""
        if pending[0] and int(steps.sum()) >= cfg.rewind_steps:
            pending[0] = False
            on_rewind_point()

    if resume is not None:  # inside this training: go on from its checkpoint
        model.load_state_dict(resume["model"])
        phase.restore(resume)
        if int(steps.sum()) >= cfg.rewind_steps:  # k passed: θk is in the checkpoint
            pending[0] = False
        budgets = [b for b in budgets if b > int(steps.sum())]

    def save() -> None:
        if save_inside is None:
            return
        take_rewind_point()
        save_inside({"model": model.state_dict(), **phase.state()})

    worker = functools.partial(keep_zero_worker, worker=agent.worker)
    for budget in budgets:
        reporters = phase.reporters(
            writer=writer, name=name, progress=progress, checkpoint=save,
            checkpoint_every=cfg.checkpoint_every, checkpoint_minutes=cfg.checkpoint_minutes,
        )  # fmt: skip
        phase.run(worker, env_id=cfg.env_id, budget=budget, reporters=reporters)
        take_rewind_point()
    return result(log, int(steps.sum()), time.monotonic() - began)


def result(log: PhaseLog, steps: int, seconds: float) -> dict[str, Any]:
    curve = learning_curve(log.episodes)
    return {
        "final_mean_return": final_mean_return(log.episodes), "steps": steps,
        "skipped_updates": log.skipped_updates, "worker_restarts": log.worker_restarts,
        "auc": curve_auc(curve, steps),
        "episodes": len(log.episodes), "seconds": seconds, "curve": curve,
    }  # fmt: skip


def main(cfg: LotteryConfig) -> dict[str, Any]:
    """Run (or resume) every repeat's rounds and return the summary written to summary.json."""
    state: dict[str, Any] = {"runs": {}, "summary": None}
    if cfg.resume is not None:
        run_path = Path(cfg.resume)
        cfg = dataclasses.replace(rd.load_config(run_path, LotteryConfig), resume=cfg.resume)
        state = rd.load_checkpoint(run_path, "lottery", {"runs": dict}) or state
        for seed, run in state["runs"].items():  # each repeat's entry, before anything runs
            rd.require({f"runs[{seed}]": run}, {f"runs[{seed}]": dict}, run_path, "lottery")
            rd.require(run, {"results": dict, "masks": dict}, run_path, "lottery")
        if state.get("summary") is not None:
            return state["summary"]
    if is_image_task(cfg.env_id):  # missing data files fail before anything is written too
        data = image_splits(cfg.env_id, cfg.data_dir, cfg.digits.resolution,
                            cfg.digits.validation)  # fmt: skip
        obs_shape, num_actions = (data.train.input_size,), data.classes
    else:
        obs_shape, num_actions = env_spaces(cfg.env_id, cfg.seed)  # bad ids fail before writes
    shapes = (cfg.env_id, obs_shape, num_actions)
    if cfg.resume is None:
        run_path = rd.prepare_run_dir(cfg.run_dir, "lottery", cfg.seed)
        rd.save_config(run_path, cfg)
    else:  # every repeat's weights and masks fit this run's network: before any writer
        for seed, run in state["runs"].items():
            check_run(dataclasses.replace(cfg, seed=seed), run, shapes, run_path)
    writer = rd.segment_writer(run_path, "")  # config and summary: every session writes all
    writer.add_text("config", f"```\n{rd.json.dumps(dataclasses.asdict(cfg), indent=2)}\n```")
    console = Console()
    with make_progress(console, cfg.progress) as progress:
        for seed in cfg.seeds:
            run = state["runs"].setdefault(seed, {"results": {}, "masks": {}})
            run_repeat(dataclasses.replace(cfg, seed=seed), run, shapes, run_path, progress,
                       save=lambda: rd.save_checkpoint(run_path, state))  # fmt: skip

    summary = summarise(cfg, {seed: state["runs"][seed]["results"] for seed in cfg.seeds})
    log_summary(writer, summary)
    write_results(run_path, summary)
    writer.close()
    state["summary"] = summary
    rd.save_checkpoint(run_path, state)
    print_table(console, summary, run_path)
    return summary


def write_results(run_path: Path, summary: dict[str, Any]) -> None:
    """``summary.json``, ``lottery.png`` (image tasks also ``early_stopping.png``) and
    ``summary.md`` in ``run_path``, each written atomically."""
    rd.write_json(run_path / rd.SUMMARY, summary)
    title = f"{summary['agent']} on {summary['env_id']}"
    plot_lottery(run_path / "lottery.png", summary, title)
    if is_image_task(summary["env_id"]):
        plot_early_stopping(run_path / "early_stopping.png", summary, title)
    text = markdown_table(summary)
    rd.atomic_write(run_path / "summary.md", lambda handle: handle.write(text.encode()))


def check_run(
    cfg: LotteryConfig, run: dict[str, Any], shapes: tuple[str, tuple[int, ...], int],
    run_path: Path,
) -> None:  # fmt: skip
    """A one-line ValueError naming the entry of repeat ``cfg.seed``'s checkpoint (its
    ``init``, ``rewind`` or ``trained`` weights, a round's ``masks``, the ``current`` training)
    that does not fit this run's network, tried on a throwaway copy of the network."""
    seed, results = cfg.seed, run["results"]
    with torch.random.fork_rng(devices=[]):  # the run's own draws stay as they were
        model, targets = build_model(cfg, *shapes)
    weights = [key for key in ("init", "rewind", "trained") if key in run]
    if "dense" in results:  # the dense training's weights, recorded when it ended
        weights += [key for key in ("rewind", "trained") if key not in weights]
    for key in weights:
        try:
            model.load_state_dict(run[key])
        except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as error:
            raise rd.malformed(run_path, f"runs[{seed}][{key!r}]", error) from None
    for level, masks in run["masks"].items():
        try:
            if not isinstance(level, int) or level < 1:
                raise ValueError(f"no round {level!r}")
            pruning.set_masks(targets, masks)
        except (IndexError, RuntimeError, TypeError, ValueError, AttributeError) as error:
            raise rd.malformed(run_path, f"runs[{seed}]['masks'][{level!r}]", error) from None
    current = run.get("current")
    if current is not None:
        try:
            model.load_state_dict(current["state"]["model"])
            if not isinstance(current["name"], str):
                raise TypeError(f"name {current['name']!r} is not a training's name")
        except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as error:
            raise rd.malformed(run_path, f"runs[{seed}]['current']", error) from None


def run_repeat(
    cfg: LotteryConfig, run: dict[str, Any], shapes: tuple[str, tuple[int, ...], int],
    run_path: Path, progress: Any, *, save: Any,
) -> None:  # fmt: skip
    """One repeat (seed ``cfg.seed``): the dense training and every round, skipping the
    trainings ``run["results"]`` already holds; ``save()`` checkpoints after each training.
    Its rounds' figures go to ``run_path/s<seed>``: every session writes all the rounds it has
    (purging what an earlier session wrote there), each training to its own directory."""
    tag = f"s{cfg.seed}"
    with rd.segment_writer(run_path, tag) as writer:
        run_rounds(cfg, run, shapes, run_path, writer, progress, save=save)


def run_rounds(
    cfg: LotteryConfig, run: dict[str, Any], shapes: tuple[str, tuple[int, ...], int],
    run_path: Path, writer: SummaryWriter, progress: Any, *, save: Any,
) -> None:  # fmt: skip
    """:func:`run_repeat`, its rounds' figures on ``writer``. ``run["current"]``: the RL
    training in progress at the last checkpoint (its name and state), if any."""
    results, tag = run["results"], f"s{cfg.seed}"

    def inside(name: str) -> dict[str, Any]:
        """The checkpoint hooks of training ``name``: its saved state, and how to save it."""
        current = run.get("current")
        resume = current["state"] if current is not None and current["name"] == name else None

        def save_inside(partial: dict[str, Any]) -> None:
            run["current"] = {"name": name, "state": partial}
            save()

        return {"resume": resume, "save_inside": save_inside}

    def finished(name: str, outcome: dict[str, Any]) -> None:
        results[name] = outcome
        run["current"] = None

    def fresh(seed: int = cfg.seed) -> tuple[nn.Module, list[pruning.PruneTarget]]:
        torch.manual_seed(seed)  # cfg.seed: θ0, the same initial weights in every build
        return build_model(cfg, *shapes)

    if "dense" not in results:
        model, targets = fresh()
        run["init"] = copy.deepcopy(model.state_dict())

        def snapshot_rewind() -> None:
            run["rewind"] = copy.deepcopy(model.state_dict())

        finished("dense", train(
            cfg, model, name=f"{tag}/dense", start=0, run_path=run_path, progress=progress,
            on_rewind_point=snapshot_rewind, **inside("dense"),
        ))  # fmt: skip
        results["dense"]["sparsity"] = pruning.sparsity(targets)
        run["trained"] = copy.deepcopy(model.state_dict())
        save()
    log_level(writer, 0, results["dense"]["sparsity"], {"dense": results["dense"]})
    for level in range(1, cfg.rounds + 1):
        if level not in run["masks"]:  # prune the latest ticket's trained weights
            model, targets = fresh()
            model.load_state_dict(run["trained"])
            fractions = prune_fractions(model, targets, cfg.prune_fraction, cfg.output_fraction)
            pruning.magnitude_prune(targets, fractions, cfg.prune.ranking)
            run["masks"][level] = [m.detach().clone() for m in pruning.masks(targets)]
        for condition in cfg.conditions:
            name = f"r{level}/{condition}"
            if name in results:
                continue
            model, targets = start_model(cfg, fresh, run, level, condition)
            finished(name, train(cfg, model, name=f"{tag}/{name}", start=cfg.rewind_steps,
                                 run_path=run_path, progress=progress,
                                 **inside(name)))  # fmt: skip
            results[name]["sparsity"] = pruning.sparsity(targets)
            if condition == "ticket":
                run["trained"] = copy.deepcopy(model.state_dict())
            save()
        level_results = {c: results[f"r{level}/{c}"] for c in cfg.conditions}
        log_level(writer, level, level_results["ticket"]["sparsity"], level_results)


def start_model(
    cfg: LotteryConfig, fresh: Any, run: dict[str, Any], level: int, condition: str
) -> tuple[nn.Module, list[pruning.PruneTarget]]:
    """The network a condition starts from: rewound weights (every parameter, not only the
    targets), round ``level``'s mask, then the condition's own mask and weights
    (:data:`~pathevo.agents.lottery_agents.CONDITION_STARTS`; its random draws from seed
    ``cfg.seed + 1000 level``)."""
    model, targets = fresh(cfg.seed)
    model.load_state_dict(run["rewind"])  # all-ones masks, the weights after k steps
    rewound = pruning.weights_snapshot(targets)
    pruning.set_masks(targets, run["masks"][level])
    draw = cfg.seed + 1000 * level

    def fresh_weights() -> list[torch.Tensor]:
        """The network's own initialisers' draw (a model built with seed ``draw``)."""
        return pruning.weights_snapshot(fresh(draw)[1])

    CONDITION_STARTS[condition](targets=targets, rewound=rewound, fresh=fresh_weights, seed=draw)
    return model, targets


def log_level(writer: SummaryWriter, level: int, sparsity: float, runs: dict[str, Any]) -> None:
    """One repeat's round in TensorBoard (its directory ``s<seed>``): ``summary/sparsity`` and
    ``summary/<condition>_return`` against the round, as the means (:func:`log_summary`)."""
    writer.add_scalar("summary/sparsity", sparsity, level)
    for condition, run in runs.items():
        writer.add_scalar(f"summary/{condition}_return", run["final_mean_return"], level)


def log_summary(writer: SummaryWriter, summary: dict[str, Any]) -> None:
    """The means over repeats: ``summary/sparsity`` and ``summary/<condition>_return``."""
    writer.add_scalar("summary/sparsity", 0.0, 0)
    writer.add_scalar("summary/dense_return", summary["dense"]["final_mean_return"], 0)
    for level in summary["levels"]:
        writer.add_scalar("summary/sparsity", level["sparsity"], level["round"])
        for condition in summary["conditions"]:
            writer.add_scalar(f"summary/{condition}_return", level[condition], level["round"])


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean final return (with its 95% interval and every repeat's value) and mean AUC; an
    image task's :data:`MEASURES` alike (``test_accuracy``, ``test_accuracy_ci95``,
    ``test_accuracy_runs``, …)."""
    finals = [run["final_mean_return"] for run in runs]
    mean, half_width = mean_interval(finals)
    stats = {"final_mean_return": mean, "ci95": half_width, "runs": finals,
             "auc": mean_interval([run["auc"] for run in runs])[0]}  # fmt: skip
    for measure in (m for m in MEASURES if m in runs[0]):
        values = [run[measure] for run in runs]
        stats[measure], stats[f"{measure}_ci95"] = mean_interval(values)
        stats[f"{measure}_runs"] = values
    return stats


def summarise(cfg: LotteryConfig, results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The summary.json content from every repeat's results (seed -> training name -> result).

    ``dense`` and each level's conditions are means over the repeats; ``ticket_minus_<control>``
    is the mean paired difference of final returns (the same seed's ticket and control) with
    its interval, and of test accuracies (``ticket_minus_<control>_test_accuracy``) for image
    tasks.
    """
    seeds = sorted(results)
    dense = {**aggregate([results[seed]["dense"] for seed in seeds]), "sparsity": 0.0}
    levels = []
    for level in range(1, cfg.rounds + 1):
        runs = {c: [results[seed][f"r{level}/{c}"] for seed in seeds] for c in cfg.conditions}
        sparsity = runs["ticket"][0]["sparsity"]
        entry: dict[str, Any] = {"round": level, "sparsity": sparsity, "remaining": 1 - sparsity}
        for condition, condition_runs in runs.items():
            stats = aggregate(condition_runs)
            entry[condition] = stats["final_mean_return"]
            entry.update({f"{condition}_{key}": value for key, value in stats.items()
                          if key != "final_mean_return"})  # fmt: skip
        for control in (c for c in cfg.conditions if c != "ticket"):
            pairs = list(zip(runs["ticket"], runs[control], strict=True))  # the same seed's two
            for measure, suffix in (("final_mean_return", ""), ("test_accuracy", "_test_accuracy")):
                if measure in pairs[0][0]:
                    key = f"ticket_minus_{control}{suffix}"
                    differences = [ticket[measure] - other[measure] for ticket, other in pairs]
                    entry[key], entry[f"{key}_ci95"] = mean_interval(differences)
        if not is_image_task(cfg.env_id):
            dense_runs = [results[seed]["dense"] for seed in seeds]
            for condition, condition_runs in runs.items():
                entry.update(retention(condition, condition_runs, dense_runs, cfg.return_floor))
        levels.append(entry)
    trainings = {f"s{seed}/{name}": run for seed in seeds for name, run in results[seed].items()}
    holds: dict[str, Any] = {}
    if not is_image_task(cfg.env_id) and dense["final_mean_return"] > cfg.return_floor:
        holds = holds_dense(cfg.conditions, levels)  # else no fraction of dense to hold
    return {
        "env_id": cfg.env_id, "agent": cfg.agent, "scope": cfg.prune.scope,
        "ranking": cfg.prune.ranking, "prune_fraction": cfg.prune_fraction,
        "output_prune_fraction": cfg.output_fraction, "conditions": list(cfg.conditions),
        "rewind_steps": cfg.rewind_steps, "steps": cfg.steps, "seeds": seeds,
        "seconds": sum(run["seconds"] for run in trainings.values()),
        "return_floor": cfg.return_floor, "holds_95": holds,
        "dense": dense, "levels": levels, "trainings": trainings,
    }  # fmt: skip


RETAINED = 0.95
"""Vischer et al.'s criterion: a condition keeps the dense performance while its mean return is
at least 95% of the dense network's (both measured above the environment's lowest return)."""


def retention(
    condition: str, runs: list[dict[str, Any]], dense: list[dict[str, Any]], floor: float
) -> dict[str, Any]:
    """A level's ``<condition>_of_dense`` (mean return over mean dense return, both above
    ``floor``) and ``<condition>_minus_95``: the mean paired margin (R - floor) - 0.95 (R_dense
    - floor) over the seeds, with its 95% interval (``_ci95``): negative when the condition
    falls below 95% of dense."""
    returns = [run["final_mean_return"] - floor for run in runs]
    dense_returns = [run["final_mean_return"] - floor for run in dense]
    margins = [r - RETAINED * d for r, d in zip(returns, dense_returns, strict=True)]
    margin, half_width = mean_interval(margins)
    dense_mean = statistics.fmean(dense_returns)
    of_dense = statistics.fmean(returns) / dense_mean if dense_mean > 0 else None
    return {f"{condition}_of_dense": of_dense, f"{condition}_minus_95": margin,
            f"{condition}_minus_95_ci95": half_width}  # fmt: skip


def holds_dense(conditions: Sequence[str], levels: list[dict[str, Any]]) -> dict[str, Any]:
    """Per condition: ``below_at``, the lowest sparsity whose mean return is below 95% of the
    dense return (None: none is), and ``held_to``, the highest sparsity before it (0: none);
    the interval of that crossing: ``surely_below_at``, the lowest sparsity whose whole 95%
    interval of the margin is below 0, and ``surely_held_to``, the highest sparsity before the
    first whose interval reaches below 0."""
    holds = {}
    for condition in conditions:
        below = surely = maybe = None
        for level in levels:
            margin, half = level[f"{condition}_minus_95"], level[f"{condition}_minus_95_ci95"]
            half = half or 0.0
            if below is None and margin < 0:
                below = level["sparsity"]
            if surely is None and margin + half < 0:
                surely = level["sparsity"]
            if maybe is None and margin - half < 0:
                maybe = level["sparsity"]
        holds[condition] = {"below_at": below, "held_to": _before(levels, below),
                            "surely_below_at": surely,
                            "surely_held_to": _before(levels, maybe)}  # fmt: skip
    return holds


def _before(levels: list[dict[str, Any]], sparsity: float | None) -> float:
    """The highest level's sparsity below ``sparsity`` (every level's for None; 0: none)."""
    return max((lv["sparsity"] for lv in levels if sparsity is None or lv["sparsity"] < sparsity),
               default=0.0)  # fmt: skip


def cell(summary: dict[str, Any], entry: dict[str, Any], condition: str | None) -> str:
    """One table cell of ``entry`` (the dense network's, ``condition`` None, or a level's): a
    final return, or for image tasks the test accuracy (%) at the early-stopping iteration and
    that iteration, each ± its 95% interval."""
    key = "" if condition is None else f"{condition}_"
    if "test_accuracy" not in summary["dense"]:
        mean = entry["final_mean_return" if condition is None else condition]
        return with_interval(mean, entry[f"{key}ci95"])
    half_width = entry[f"{key}test_accuracy_ci95"]
    accuracy = with_interval(100 * entry[f"{key}test_accuracy"],
                             None if half_width is None else 100 * half_width, 1)  # fmt: skip
    iteration = with_interval(entry[f"{key}early_stop_step"],
                              entry[f"{key}early_stop_step_ci95"], 0)  # fmt: skip
    return f"{accuracy} @ {iteration}"


def table_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The result table's header and rows: one row per round (round 0 the dense network)."""
    conditions = summary["conditions"]
    header = ["round", f"{summary['scope']} sparsity", "remaining", *conditions]
    dense = summary["dense"]
    rows = [["0 (dense)", f"{dense['sparsity']:.1%}", f"{1 - dense['sparsity']:.1%}",
             cell(summary, dense, None), *[""] * (len(conditions) - 1)]]  # fmt: skip
    for level in summary["levels"]:
        rows.append([str(level["round"]), f"{level['sparsity']:.1%}",
                     f"{1 - level['sparsity']:.1%}",
                     *(cell(summary, level, c) for c in conditions)])  # fmt: skip
    return header, rows


def what_is_shown(summary: dict[str, Any]) -> str:
    """What the table's cells are (:func:`cell`)."""
    what = "final mean return (20 ep.)"
    if "test_accuracy" in summary["dense"]:  # image tasks
        what = "test accuracy (%) at the early-stopping iteration @ that iteration"
    repeats = len(summary["seeds"])
    return what + (f", mean ± 95% interval of {repeats} repeats" if repeats > 1 else "")


def print_table(console: Console, summary: dict[str, Any], run_path: Path) -> None:
    table = Table(title=f"Lottery tickets: {summary['agent']} on {summary['env_id']} "
                        f"({what_is_shown(summary)})")  # fmt: skip
    header, rows = table_rows(summary)
    for column in header:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for line in holds_lines(summary):
        console.print(line)
    console.print(f"Run: {run_path}  ({summary['seconds']:.0f} s of training)")


def holds_lines(summary: dict[str, Any]) -> list[str]:
    """One line per condition: up to which sparsity its mean return stays at 95% of dense."""
    if (
        "holds_95" in summary
        and not summary["holds_95"]
        and summary["levels"]
        and ("test_accuracy" not in summary["dense"])
    ):
        return [f"the dense return is not above the floor {summary['return_floor']}: no 95% "
                "criterion (set --return-floor to the environment's lowest return)"]  # fmt: skip
    lines = []
    for condition, held in summary.get("holds_95", {}).items():
        below, surely = held["below_at"], held["surely_below_at"]
        line = f"{condition}: mean return >= 95% of dense up to {held['held_to']:.1%} pruned"
        line += f", below from {below:.1%}" if below is not None else ", never below"
        line += f" (interval below from {surely:.1%})" if surely is not None else ""
        lines.append(line)
    return lines


def markdown_table(summary: dict[str, Any]) -> str:
    """The result table as Markdown (``summary.md``), ready for the docs."""
    header, rows = table_rows(summary)
    lines = [f"{summary['agent']} on {summary['env_id']}: {what_is_shown(summary)}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    held = holds_lines(summary)
    return "\n".join(lines + ([""] + held if held else [])) + "\n"


def with_interval(mean: float, half_width: float | None, digits: int = 2) -> str:
    if half_width is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half_width:.{digits}f}"


def cli_main(cfg: LotteryConfig) -> dict[str, Any]:
    """:func:`main` from the command line: the agent's own defaults where no flag was given
    (``--agent lenet``: Frankle & Carbin's settings)."""
    return main(get_agent(cfg.agent).configure(cfg, flags_given(sys.argv[1:])))


if __name__ == "__main__":
    run_cli(cli_main, LotteryConfig, description=__doc__.split("\n\n")[0])
