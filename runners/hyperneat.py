"""Evolve CPPNs with NEAT whose generated weights play a game (HyperNEAT), or seed A3C with one.

Stanley, D'Ambrosio & Gauci 2009 (HyperNEAT) with NEAT's operators (Stanley & Miikkulainen 2002) in
DEAP; Hausknecht et al. 2014 played Atari from the screen this way. Every genome is a CPPN; the
policy's weights are the CPPN queried at the coordinates of every connection of a substrate
(:mod:`pathevo.agents.neuroevolution`); fitness is the policy's episode return, evaluated over the
map backend (serial, processes), a seed per genome. ``--mode hybrid`` then lets the best CPPN
initialise a path's modules and fine-tunes them with A3C, beside the same run from a random
initialisation.

Run ``pathevo hyperneat --help``; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tyro
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter

from pathevo.agents.a3c import A3CConfig
from pathevo.agents.hybrid import HybridConfig, check_hybrid, fine_tune
from pathevo.agents.neuroevolution import (
    CPPN_INPUTS,
    CPPN_OUTPUTS,
    FitnessTask,
    HyperNEATConfig,
    SubstratePolicy,
    clear_worker_cache,
    evaluate_graph,
)
from pathevo.agents.phase import env_spaces
from pathevo.agents.registry import agent_names, get_agent
from pathevo.evolution.backends import BACKENDS, check_backend, map_backend
from pathevo.evolution.neat_config import NeatConfig
from pathevo.evolution.neat_evolution import (
    NeatState,
    initial_state,
    neat_state_from_data,
    neat_state_to_data,
    next_generation,
)
from pathevo.evolution.toolbox import (
    cppn_individual_from_data,
    cppn_individual_to_data,
    make_neat_toolbox,
)
from pathevo.modules.cppn import CPPNGraph
from pathevo.runners.figures.neat import plot_cppn, plot_fitness, weight_image
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import choice_of, resolve_device, run_cli
from pathevo.runners.plumbing.plots import plot_learning_curves

Backend = choice_of(list(BACKENDS))
AgentName = choice_of(agent_names(trainer="neuroevolution"))


@dataclass
class HyperNEATRunConfig:
    """HyperNEAT on one environment: NEAT-evolved CPPNs generate a policy's weights."""

    env_id: str = "CartPole-v1"
    """Environment id (CartPole-v1, MinAtar/…, ALE/…, pathevo/Labyrinth-…; see
    `python -m pathevo.envs`)."""
    agent: AgentName = "hyperneat"
    """Neuroevolution agent from the registry (hyperneat: a CPPN paints a substrate policy)."""
    mode: Literal["evolve", "hybrid"] = "evolve"
    """evolve: neuroevolution only; hybrid: then fine-tune the best CPPN's path with A3C, beside
    a random initialisation."""
    generations: int = 100
    """Generations of NEAT at most."""
    seed: int = 0
    """Seed of evolution; genome g's episodes in generation t start at seed seed + 1000·g +
    1000003·t."""
    backend: Backend = "processes"
    """Where fitness evaluations run: serial (this process), processes (local), or ray (a
    local Ray instance or the cluster at --ray-address); the same seeds, so the same result."""
    workers: int = 2
    """Processes of the `processes` backend (CPUs of a local Ray instance)."""
    ray_address: str | None = None
    """Ray cluster to join (host:port, ray://host:port, or auto); None starts a local one."""
    device: str = "cpu"
    """Where the serial backend's CPPNs paint the substrate weights and its policies run: cpu,
    cuda, cuda:N or auto (the processes and ray backends evaluate on CPU workers)."""
    target_fitness: float | None = 195.0
    """Stop once the best genome, whose fitness reached this, also averages it over
    `eval-episodes` unseen episodes (None: run every generation). 195 is CartPole's classic
    solved mark; set it per game (or None) for others."""
    eval_episodes: int = 100
    """Episodes of the target check and the final evaluation of the best genome, from seeds no
    fitness evaluation used (lower it for slow games)."""
    neat: Annotated[NeatConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=NeatConfig)
    """NEAT's settings, flags without a prefix (`--population`, `--target-species`, …)."""
    hyperneat: HyperNEATConfig = field(default_factory=HyperNEATConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    a3c: A3CConfig = field(default_factory=A3CConfig)
    run_dir: str | None = None
    """Where to write the run (default: runs/hyperneat-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory from its last checkpoint (other flags are ignored)."""
    checkpoint_every: int = 1
    """Generations between checkpoints."""
    progress: bool = True
    """Show a progress display."""

    def __post_init__(self) -> None:
        for name in ("generations", "workers", "eval_episodes", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive")
        get_agent(self.agent, trainer="neuroevolution")
        check_backend(self.backend, self.ray_address)  # Ray: installed, the address answers
        parallel = self.backend != "serial"  # auto: the GPU if serial, else the CPU workers
        if resolve_device(self.device).type != "cpu" and parallel and self.device != "auto":
            raise ValueError(f"the {self.backend!r} backend evaluates on CPU workers; use "
                             "--backend serial with --device cuda")  # fmt: skip


def main(cfg: HyperNEATRunConfig) -> dict[str, Any]:
    """Evolve (or resume), evaluate the best genome, optionally fine-tune; return the summary."""
    checkpoint = None
    if cfg.resume is not None:
        run_path = Path(cfg.resume)
        cfg = dataclasses.replace(rd.load_config(run_path, HyperNEATRunConfig), resume=cfg.resume)
        checkpoint = load_state(run_path)  # refused or malformed: nothing has run
        if checkpoint is not None and checkpoint.get("summary") is not None:
            return checkpoint["summary"]
    obs_shape, num_actions = env_spaces(cfg.env_id, cfg.seed)  # bad ids fail before any write
    if cfg.mode == "hybrid":
        check_hybrid(obs_shape)
    if cfg.resume is None:
        run_path = rd.prepare_run_dir(cfg.run_dir, "hyperneat", cfg.seed)
        rd.save_config(run_path, cfg)

    neat_cfg = cfg.neat
    rng = random.Random(cfg.seed)
    agent = get_agent(cfg.agent, trainer="neuroevolution")
    device = "cpu" if cfg.backend != "serial" else str(resolve_device(cfg.device))
    task = FitnessTask(cfg.env_id, obs_shape, num_actions, cfg.hyperneat, cfg.seed, device=device)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None  # {"graph", "fitness", "generation", "eval_mean"}
    checked: dict[int, float] = {}  # genome key -> eval mean, for champions that hit the target
    with map_backend(cfg.backend, cfg.workers, cfg.seed, cfg.ray_address) as map_fn:
        toolbox = make_neat_toolbox(neat_cfg, CPPN_INPUTS, CPPN_OUTPUTS, map_fn, rng)
        if checkpoint is None:
            population, state = toolbox.population(n=neat_cfg.population), initial_state(toolbox)
        else:
            population, state = checkpoint["population"], checkpoint["state"]
            history, best = checkpoint["history"], checkpoint["best"]
            checked = checkpoint["checked"]
            rng.setstate(checkpoint["rng"])
        writer = SummaryWriter(str(run_path), purge_step=len(history) or None)
        if not history:
            writer.add_text(
                "config", f"```\n{rd.json.dumps(dataclasses.asdict(cfg), indent=2)}\n```"
            )

        def save(summary: dict[str, Any] | None = None) -> None:
            rd.save_checkpoint(run_path, to_checkpoint({
                "population": population, "state": state, "history": history, "best": best,
                "checked": checked, "rng": rng.getstate(), "summary": summary,
            }))  # fmt: skip

        console = Console()
        solved = best is not None and _reached(cfg, best)
        with _progress(console, cfg.progress) as progress:
            bar = progress.add_task("evolve", total=cfg.generations, best=float("nan"))
            progress.update(bar, completed=len(history))
            while len(history) < cfg.generations and not solved:
                if history:  # the population of the last generation has been scored: breed
                    population, state = next_generation(population, state, toolbox)
                scoring = dataclasses.replace(task, generation=len(history))
                fitnesses = toolbox.map(_Fitness(scoring, agent.worker), population)
                for individual, fitness in zip(population, fitnesses, strict=True):
                    individual.fitness.values = fitness
                record, champion = _record(population, state, toolbox)
                best = _new_best(cfg, task, best, record, champion, len(history), checked)
                history.append(record)
                _log(writer, record, best, task, len(history) - 1)
                solved = _reached(cfg, best)
                progress.update(bar, completed=len(history), best=record["max"])
                if len(history) % cfg.checkpoint_every == 0:
                    save()
        if best is not None and best["eval_mean"] is None:
            best["eval_mean"] = _evaluate(task, best["graph"], cfg)
    clear_worker_cache()

    summary = summarise(cfg, history, best, solved)
    plot_fitness(run_path / "fitness.png", history, f"HyperNEAT on {cfg.env_id}")
    if best is not None:
        plot_cppn(
            run_path / "best_cppn.png", best["graph"], f"best CPPN (fitness {best['fitness']:.1f})"
        )
    if cfg.mode == "hybrid" and best is not None:
        summary["hybrid"] = fine_tune(
            cfg.hybrid, cfg.a3c, cfg.env_id, obs_shape, num_actions, best["graph"],
            cfg.hyperneat, cfg.seed, lambda name: rd.segment_writer(run_path, f"hybrid/{name}"),
            cfg.progress,
        )  # fmt: skip
        plot_learning_curves(
            run_path / "hybrid_learning_curve.png",
            {name: result["curve"] for name, result in summary["hybrid"].items()},
            f"A3C on {cfg.env_id}: CPPN vs random initialisation",
        )
    rd.write_json(run_path / rd.SUMMARY, summary)
    writer.close()
    save(summary)
    print_table(console, summary, run_path)
    return summary


@dataclass(frozen=True)
class _Fitness:
    """``genome -> (fitness,)`` for the map backend (a picklable callable, not a closure)."""

    task: FitnessTask
    fitness: Callable[[FitnessTask, Any], tuple[float]]
    """The agent's fitness function (a top-level function: pickled by reference)."""

    def __call__(self, individual: Any) -> tuple[float]:
        return self.fitness(self.task, individual)


def _evaluate(task: FitnessTask, graph: CPPNGraph, cfg: HyperNEATRunConfig) -> float:
    """Mean greedy return of ``graph``'s policy over ``eval_episodes`` seeds no genome saw."""
    returns = evaluate_graph(task, graph, cfg.seed + 10**9, cfg.eval_episodes)
    return float(np.mean(returns))


def _new_best(
    cfg: HyperNEATRunConfig,
    task: FitnessTask,
    best: dict[str, Any] | None,
    record: dict[str, Any],
    champion: Any,
    generation: int,
    checked: dict[int, float],
) -> dict[str, Any]:
    """The best genome so far after this generation.

    The fittest genome seen is the best, except that a champion whose fitness reached the
    target is checked on ``eval_episodes`` unseen episodes (once per genome) and replaces a best
    that failed its check if it passes: fitness over a few episodes saturates at a game's
    maximum (CartPole's 500), and the first genome to get there need not be the one that holds.
    """
    key, target = int(champion.genome.key), cfg.target_fitness
    if target is not None and record["max"] >= target and key not in checked:
        graph = CPPNGraph.from_genome(champion.genome, CPPN_INPUTS, CPPN_OUTPUTS)
        checked[key] = _evaluate(task, graph, cfg)
    passes = key in checked and checked[key] >= target
    if best is None or record["max"] > best["fitness"] or (passes and not _reached(cfg, best)):
        graph = CPPNGraph.from_genome(champion.genome, CPPN_INPUTS, CPPN_OUTPUTS)
        return {"graph": graph, "fitness": record["max"], "generation": generation,
                "eval_mean": checked.get(key)}  # fmt: skip
    return best


def _reached(cfg: HyperNEATRunConfig, best: dict[str, Any]) -> bool:
    target, mean = cfg.target_fitness, best["eval_mean"]
    return target is not None and mean is not None and mean >= target


def _record(population: list[Any], state: NeatState, toolbox: Any) -> tuple[dict[str, Any], Any]:
    """This generation's statistics (fitness, species, genome sizes) and its best genome."""
    values = [ind.fitness.values[0] for ind in population]
    champion = population[int(np.argmax(values))]
    nodes = [len(ind.genome.nodes) for ind in population]
    connections = [sum(c.enabled for c in ind.genome.connections.values()) for ind in population]
    sizes = toolbox.species_sizes(population, state)
    record = {
        "max": float(np.max(values)), "mean": float(np.mean(values)),
        "species": len(sizes), "species_sizes": sizes,
        "nodes_mean": float(np.mean(nodes)), "connections_mean": float(np.mean(connections)),
        "best_nodes": len(champion.genome.nodes),
        "best_connections": sum(c.enabled for c in champion.genome.connections.values()),
    }  # fmt: skip
    return record, champion


def _log(
    writer: SummaryWriter,
    record: dict[str, Any],
    best: dict[str, Any],
    task: FitnessTask,
    generation: int,
) -> None:
    """TensorBoard: fitness, species, genome sizes, and the best genome's generated weights."""
    for key in ("max", "mean"):
        writer.add_scalar(f"evolution/fitness_{key}", record[key], generation)
    if best["eval_mean"] is not None:
        writer.add_scalar("evolution/best_eval_mean_return", best["eval_mean"], generation)
    writer.add_scalar("evolution/species", record["species"], generation)
    writer.add_histogram("evolution/species_sizes", np.asarray(record["species_sizes"]), generation)
    for key in ("nodes_mean", "connections_mean", "best_nodes", "best_connections"):
        writer.add_scalar(f"genome/{key}", record[key], generation)
    policy = SubstratePolicy(task.obs_shape, task.num_actions, task.cfg)
    policy.express(best["graph"])
    for index, weights in enumerate(policy.weight_matrices()):
        writer.add_image(f"genome/best_weights_layer{index}", weight_image(weights), generation)


NEEDS = {"population": list, "state": dict, "history": list, "best": (dict, type(None)),
         "checked": dict, "rng": tuple}  # fmt: skip
"""What a hyperneat checkpoint holds (and the types of those values) to resume from."""


def to_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """The run's state as plain data: individuals as genome dicts
    (:func:`pathevo.evolution.toolbox.cppn_individual_to_data`), the NEAT state with its species
    (:func:`pathevo.evolution.neat_evolution.neat_state_to_data`), the best CPPN as its dict."""
    best = state["best"]
    return {
        **state,
        "population": [cppn_individual_to_data(ind) for ind in state["population"]],
        "state": neat_state_to_data(state["state"]),
        "best": None if best is None else {**best, "graph": best["graph"].to_dict()},
    }


def load_state(run_path: Path) -> dict[str, Any] | None:
    """The run's state from its checkpoint (the inverse of :func:`to_checkpoint`), None if it has
    none; a one-line ValueError if the checkpoint is refused or lacks what a resume needs."""
    state = rd.load_checkpoint(run_path, "hyperneat", NEEDS)
    if state is None:
        return None
    checks = [(f"history[{index}]", check_record, record)
              for index, record in enumerate(state["history"])]  # fmt: skip
    checks += [("best", check_best, state["best"]), ("checked", check_checked, state["checked"])]
    for key, check, value in checks:
        try:
            check(value)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise rd.malformed(run_path, key, error) from None
    key = "population"
    try:
        state["population"] = [cppn_individual_from_data(d) for d in state["population"]]
        key = "state"
        state["state"] = neat_state_from_data(state["state"])
        key = "best"
        if state["best"] is not None:
            state["best"] = {**state["best"], "graph": CPPNGraph.from_dict(state["best"]["graph"])}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise rd.malformed(run_path, key, error) from None
    try:
        random.Random().setstate(state["rng"])
    except (TypeError, ValueError) as error:
        raise rd.malformed(run_path, "rng", error) from None
    return state


RECORD = {"max": (int, float), "mean": (int, float), "species": int, "species_sizes": list,
          "nodes_mean": (int, float), "connections_mean": (int, float), "best_nodes": int,
          "best_connections": int}  # fmt: skip
"""What a generation's entry of ``history`` holds (see ``_record``), and of what types."""


def check_record(record: Any) -> None:
    """A TypeError (KeyError) unless ``record`` is a generation's entry of ``history``."""
    if not isinstance(record, dict):
        raise TypeError(f"a {type(record).__name__}, not a generation's record (dict)")
    for key, kind in RECORD.items():  # what summary and figures read; the rest, if there
        if key not in ("max", "mean", "species") and key not in record:
            continue
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise TypeError(f"its {key!r} is a {type(record[key]).__name__}")


def check_best(best: dict[str, Any] | None) -> None:
    """A TypeError (KeyError) unless ``best`` is None or the best genome's entry."""
    if best is not None:
        numbers = {"fitness": (int, float), "generation": int,
                   "eval_mean": (int, float, type(None))}  # fmt: skip
        for key, kind in numbers.items():
            if not isinstance(best[key], kind):
                raise TypeError(f"its {key!r} is a {type(best[key]).__name__}")


def check_checked(checked: dict[Any, Any]) -> None:
    """A TypeError unless ``checked`` maps genome keys to evaluated mean returns."""
    for key, value in checked.items():
        if not isinstance(key, int) or not isinstance(value, int | float):
            raise TypeError(f"{key!r}: {value!r} is not a genome key's mean return")


def summarise(
    cfg: HyperNEATRunConfig,
    history: list[dict[str, Any]],
    best: dict[str, Any] | None,
    solved: bool,
) -> dict[str, Any]:
    """The summary.json content."""
    return {
        "env_id": cfg.env_id,
        "mode": cfg.mode,
        "generations": len(history),
        "population": cfg.neat.population,
        "best_fitness": best["fitness"] if best else None,
        "best_generation": best["generation"] if best else None,
        "best_eval_mean_return": best["eval_mean"] if best else None,
        "eval_episodes": cfg.eval_episodes,
        "solved": solved,
        "best_cppn": {
            "nodes": best["graph"].num_nodes,
            "connections": best["graph"].num_connections,
        }
        if best
        else None,
        "per_generation": [
            {"max": r["max"], "mean": r["mean"], "species": r["species"]} for r in history
        ],
    }


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f} gen."),
        TextColumn("best {task.fields[best]:.1f}"), TimeElapsedColumn(),
        console=console, disable=not enabled,
    )  # fmt: skip


def print_table(console: Console, summary: dict[str, Any], run_path: Path) -> None:
    table = Table(title=f"HyperNEAT on {summary['env_id']}")
    for column in ("generations", "best fitness", "best genome, eval mean", "solved"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary["generations"]),
        f"{summary['best_fitness']:.1f}",
        f"{summary['best_eval_mean_return']:.1f} ({summary['eval_episodes']} ep.)",
        "yes" if summary["solved"] else "no",
    )
    console.print(table)
    if "hybrid" in summary:
        hybrid = Table(title="A3C fine-tuning: CPPN vs random initialisation")
        for column in ("initialisation", "final mean return (20 ep.)", "steps"):
            hybrid.add_column(column, justify="right")
        for name, result in summary["hybrid"].items():
            hybrid.add_row(name, f"{result['final_mean_return']:.1f}", f"{result['steps']:,}")
        console.print(hybrid)
    console.print(f"Run: {run_path}")


if __name__ == "__main__":
    run_cli(main, HyperNEATRunConfig, description=__doc__.split("\n\n")[0])
