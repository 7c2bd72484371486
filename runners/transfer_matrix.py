"""PathNet-A3C transfer between every ordered pair of games, over seeds: a matrix of speed-ups.

Fernando et al. 2017, arXiv:1701.08734, Fig. 6-7 (the Atari and Labyrinth transfer matrices).
For each seed (``--repeats K`` seeds from ``--transfer.seed``) the matrix trains, each
``--transfer.steps`` environment steps (:mod:`pathevo.runners.atari_transfer`'s phases):

* ``learn`` per game G: PathNet-A3C on G from a fresh library. It is the from-scratch control
  of every pair with target G *and* the source phase of every pair with source G (the same
  training: a fresh library, random paths), so a game's scratch run is shared by its pairs;
* ``pathnet`` per ordered pair (A, B): A's best path (from A's ``learn``) frozen, every other
  module and the population re-initialised, a new head, PathNet-A3C on B;
* ``finetune`` per pair: A's network after its ``learn``, every worker on A's best path, not
  frozen, fine-tuned on B with a new head, no evolution.

G games cost G + 2·G·(G-1) trainings a seed. Every training is a resumable unit in its own
directory (``s<seed>/<kind>__<A>[__<B>]``); ``--resume RUN_DIR`` skips finished units and
continues a killed one from its checkpoint, and ``--repeats`` given with ``--resume`` adds seeds.
After every unit ``matrix.json`` is rewritten from what has finished.

Two measures of a pair's speed-up, per seed and as a geometric mean with its 95% interval over
seeds (the mean of log ratios, Student t): **steps to threshold** (the steps a control needs to
reach a 20-episode mean of the target's threshold over the steps PathNet needs; a run that
never reaches it counts the whole budget) and **area ratio** (PathNet's area under the learning
curve over the control's: the mean return over the whole phase, which also counts how high the
curve goes, not only when it crosses one line). The threshold of a target is ``--thresholds``
or, by default, lowest + ``--transfer.threshold-fraction`` x (highest - lowest) of every
20-episode mean of every run on it (all conditions, sources and seeds).
Run ``pathevo transfer_matrix --envs ID ID ID --repeats 5``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from pathevo.agents.curves import curve_auc, final_mean_return, learning_curve, steps_to_threshold
from pathevo.agents.pathnet_a3c import common_input_shape
from pathevo.agents.phase import env_spaces
from pathevo.runners import atari_transfer
from pathevo.runners.atari_transfer import PHASES, TransferConfig
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli
from pathevo.runners.plumbing.plots import save_figure
from pathevo.runners.plumbing.stats import mean_interval

MATRIX = "matrix.json"
FIGURE = "matrix.png"
RESULT = "result.json"
"""A finished unit's record: its episodes, best path, restarts, steps and seconds."""
KINDS = {"learn": "pathnet_a", "pathnet": "pathnet_b", "finetune": "finetune"}
"""Unit kind -> the transfer runner's phase that trains it."""
COMPARISONS = {
    "pathnet_vs_scratch": ("pathnet", "learn"),
    "pathnet_vs_finetune": ("pathnet", "finetune"),
    "finetune_vs_scratch": ("finetune", "learn"),
}
"""Speed-up key -> (the faster-hoped condition, the control it is measured against)."""
MEASURES = {"steps": "steps to threshold", "area": "area under the curve"}
PANELS = ("pathnet_vs_scratch", "finetune_vs_scratch")
"""The heat map's panels (both against learning B from scratch), per measure."""


@dataclass
class MatrixConfig:
    """Transfer between every ordered pair of ``envs`` over seeds (PathNet-A3C, scratch and
    fine-tuning)."""

    envs: tuple[str, ...] = (
        "MinAtar/Breakout-v1",
        "MinAtar/SpaceInvaders-v1",
        "MinAtar/Asterix-v1",
    )
    """Game ids (at least 2, distinct); every ordered pair (A, B), A != B, is one transfer."""
    transfer: TransferConfig = field(default_factory=TransferConfig)
    """Settings of every training (env ids, seed, run-dir and resume are set per unit; its seed
    is the first of the matrix's)."""
    repeats: int = 1
    """Seeds: transfer.seed, transfer.seed + 1, ... With --resume, a larger value adds seeds."""
    thresholds: tuple[float, ...] | None = None
    """Per game of --envs (same order), the 20-episode mean that counts as learned on it as a
    target; default: from the runs (see --transfer.threshold-fraction)."""
    run_dir: str | None = None
    """Where to write the matrix (default: runs/transfer_matrix-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the matrix in this directory: finished units are kept, a killed one continues
    from its checkpoint. Of the other flags only --repeats (a larger value adds seeds),
    --thresholds (analysis only) and --transfer.progress count."""

    def __post_init__(self) -> None:
        if len(self.envs) < 2:
            raise ValueError(f"a transfer matrix needs at least 2 ids, got {list(self.envs)}")
        duplicates = sorted({env_id for env_id in self.envs if self.envs.count(env_id) > 1})
        if duplicates:
            raise ValueError(f"duplicate ids in --envs: {', '.join(duplicates)}")
        if not 0 < self.repeats < 100:  # a unit kind's seed offset is 100 (atari_transfer)
            raise ValueError(f"repeats must lie in 1..99, got {self.repeats}")
        if self.thresholds is not None and len(self.thresholds) != len(self.envs):
            raise ValueError(
                f"--thresholds needs one value per id of --envs ({len(self.envs)}), "
                f"got {len(self.thresholds)}"
            )

    @property
    def seeds(self) -> list[int]:
        return list(range(self.transfer.seed, self.transfer.seed + self.repeats))


@dataclass(frozen=True)
class Unit:
    """One training of the matrix: ``kind`` (a key of KINDS) at ``seed``; a ``learn`` unit's
    ``env_b`` is its own game."""

    kind: str
    seed: int
    env_a: str
    env_b: str

    @property
    def phase(self) -> str:
        return KINDS[self.kind]

    def path(self, run_path: Path) -> Path:
        """``s<seed>/<kind>__<A>[__<B>]``: ids with anything but [A-Za-z0-9.-] as ``_``."""
        games = [self.env_a] if self.kind == "learn" else [self.env_a, self.env_b]
        names = "__".join(re.sub(r"[^A-Za-z0-9.-]+", "_", env_id) for env_id in games)
        return run_path / f"s{self.seed}" / f"{self.kind}__{names}"

    def source(self) -> Unit:
        """The ``learn`` unit whose network and best path a transfer unit starts from."""
        return Unit("learn", self.seed, self.env_a, self.env_a)


def units_of(cfg: MatrixConfig) -> list[Unit]:
    """Every unit, seed by seed: the seed's ``learn`` units, then each pair's two transfers."""
    units = []
    for seed in cfg.seeds:
        units += [Unit("learn", seed, env_id, env_id) for env_id in cfg.envs]
        for env_a in cfg.envs:
            for env_b in cfg.envs:
                if env_a != env_b:
                    units += [Unit(kind, seed, env_a, env_b) for kind in ("pathnet", "finetune")]
    return units


def unit_config(cfg: MatrixConfig, unit: Unit, run_path: Path) -> TransferConfig:
    return dataclasses.replace(
        cfg.transfer, env_a=unit.env_a, env_b=unit.env_b, seed=unit.seed,
        run_dir=str(unit.path(run_path)), resume=None,
    )  # fmt: skip


def unit_state(cfg: MatrixConfig, unit: Unit, run_path: Path) -> dict[str, Any]:
    """The transfer runner's state for ``unit``: its checkpoint if it was killed inside its
    training, else a fresh one (a transfer unit's with its source's network and best path)."""
    path = unit.path(run_path)
    state = atari_transfer.load_state(path) if (path / rd.CONFIG).exists() else None
    if state is not None:
        return state
    state = {"phase": PHASES.index(unit.phase), "logs": {}, "paths": {}, "after_a": None,
             "best_a": None, "current": None}  # fmt: skip
    if unit.kind != "learn":
        source = atari_transfer.load_state(unit.source().path(run_path))
        if source is None or source["after_a"] is None:
            raise ValueError(f"{unit.source().path(run_path)} has no finished network")
        state["after_a"], state["best_a"] = source["after_a"], source["best_a"]
    return state


def run_unit(
    cfg: MatrixConfig,
    unit: Unit,
    run_path: Path,
    spaces: dict[str, tuple[tuple[int, ...], int]],
    progress: Progress,
) -> dict[str, Any]:
    """Train ``unit`` (or continue it from its checkpoint) and write its ``result.json``; a
    ``learn`` unit keeps its checkpoint (its network and best path, what its pairs start from)."""
    path = unit.path(run_path)
    transfer = unit_config(cfg, unit, run_path)
    state = unit_state(cfg, unit, run_path)
    if not (path / rd.CONFIG).exists():
        path.mkdir(parents=True, exist_ok=True)
        rd.save_config(path, transfer)
    shape = common_input_shape(*(spaces[env_id][0] for env_id in cfg.envs))
    actions = (spaces[unit.env_a][1], spaces[unit.env_b][1])
    if state["phase"] < len(PHASES):  # else killed after its training, before its record
        atari_transfer.train_phase(transfer, state, shape, actions, path, progress)
        state["phase"], state["current"] = len(PHASES), None
        rd.save_checkpoint(path, state)
    log = state["logs"][unit.phase]
    result = {
        "kind": unit.kind, "seed": unit.seed, "env_a": unit.env_a, "env_b": unit.env_b,
        "episodes": log["episodes"], "best_path": state["paths"][unit.phase],
        "worker_restarts": log["worker_restarts"], "seconds": log["seconds"],
    }  # fmt: skip
    rd.write_json(path / RESULT, result)
    if unit.kind != "learn":  # only a learn unit's network is needed again
        (path / rd.CHECKPOINT).unlink()
    return result


def check_units(cfg: MatrixConfig, run_path: Path) -> None:
    """Before a resumed matrix trains: every unfinished unit's directory has a readable config
    and checkpoint (one bad unit would otherwise stop the matrix after hours of others)."""
    for unit in units_of(cfg):
        path = unit.path(run_path)
        if (path / rd.CONFIG).exists() and not (path / RESULT).exists():
            rd.load_config(path, TransferConfig)
            atari_transfer.load_state(path)  # refused or malformed: before any unit runs
        source = None if unit.kind == "learn" else unit.source().path(run_path)
        if source is not None and (source / RESULT).exists() and not (path / RESULT).exists():
            state = atari_transfer.load_state(source)  # what this unit will start from
            if state is None or state["after_a"] is None:
                raise ValueError(f"cannot resume: {source} has no finished network for its pairs")


# --- the matrix from the finished units ------------------------------------------------------


def curves_of(results: dict[Unit, dict[str, Any]]) -> dict[Unit, list[list[float]]]:
    """Every finished unit's 20-episode mean curve, full windows only."""
    return {
        unit: learning_curve(result["episodes"], points=10**9, full_window=True)
        for unit, result in results.items()
    }


def thresholds_of(
    cfg: MatrixConfig, curves: dict[Unit, list[list[float]]]
) -> dict[str, float | None]:
    """Per game as a target: ``--thresholds``, or lowest + fraction x (highest - lowest) of its
    runs' curves (``None`` while no run on it has finished)."""
    if cfg.thresholds is not None:
        return dict(zip(cfg.envs, cfg.thresholds, strict=True))
    out: dict[str, float | None] = {}
    for env_id in cfg.envs:
        values = [value for unit, curve in curves.items() if unit.env_b == env_id
                  for _, value in curve]  # fmt: skip
        out[env_id] = (
            min(values) + cfg.transfer.threshold_fraction * (max(values) - min(values))
            if values else None
        )  # fmt: skip
    return out


def ratio_summary(values: list[float]) -> dict[str, Any]:
    """The geometric mean of positive ratios with its 95% interval (from the log ratios' mean
    and Student-t half-width; no interval from one value), and how many are above/below 1."""
    logs = [math.log(value) for value in values]
    mean, half = mean_interval(logs)
    return {
        "mean": math.exp(mean),
        "low": None if half is None else math.exp(mean - half),
        "high": None if half is None else math.exp(mean + half),
        "seeds": len(values),
        "above_1": sum(value > 1 for value in values),
        "below_1": sum(value < 1 for value in values),
    }


def pair_seed(
    cfg: MatrixConfig,
    env_a: str,
    env_b: str,
    seed: int,
    curves: dict[Unit, list[list[float]]],
    threshold: float,
) -> dict[str, Any] | None:
    """One pair at one seed: each condition's steps to ``threshold`` and area, and the ratios
    of COMPARISONS in both measures; ``None`` until its three units have finished."""
    units = {
        "learn": Unit("learn", seed, env_b, env_b),
        "pathnet": Unit("pathnet", seed, env_a, env_b),
        "finetune": Unit("finetune", seed, env_a, env_b),
    }
    if any(unit not in curves for unit in units.values()):
        return None
    budget = cfg.transfer.steps
    steps = {}  # None: not reached within the budget (censored)
    for name, unit in units.items():
        reached = steps_to_threshold(curves[unit], threshold)
        steps[name] = None if reached is None or reached > budget else reached
    area = {name: curve_auc(curves[unit], budget) for name, unit in units.items()}
    out: dict[str, Any] = {
        "steps_to_threshold": steps,
        "area": {name: value if math.isfinite(value) else None for name, value in area.items()},
    }  # a run that ended no episode has no curve and no area
    for key, (faster, control) in COMPARISONS.items():
        positive = area[faster] > 0 and area[control] > 0  # False for NaN too
        out[key] = {
            "steps": (steps[control] or budget) / (steps[faster] or budget),
            "area": area[faster] / area[control] if positive else None,
            "censored": sum(steps[name] is None for name in (faster, control)),
        }  # a ratio of areas needs positive mean returns
    return out


def pair_summary(seeds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per comparison and measure, the seeds' ratios summarised (:func:`ratio_summary`; the
    seeds with a value: an area ratio needs positive areas). A steps ratio with a censored run
    (one that never reached the threshold counts the whole budget) is a bound, not a
    measurement: ``censored_one`` and ``censored_both`` count those seeds (both censored: 1.0)."""
    out: dict[str, Any] = {}
    for key in COMPARISONS:
        out[key] = {}
        for measure in MEASURES:
            values = [seed[key][measure] for seed in seeds.values()
                      if seed[key][measure] is not None]  # fmt: skip
            if values:
                out[key][measure] = ratio_summary(values)
        if "steps" in out[key]:
            censored = [seed[key]["censored"] for seed in seeds.values()]
            out[key]["steps"] |= {"censored_one": censored.count(1),
                                  "censored_both": censored.count(2)}  # fmt: skip
    return out


def build_matrix(cfg: MatrixConfig, results: dict[Unit, dict[str, Any]]) -> dict[str, Any]:
    """``matrix.json`` from the finished units: per pair its seeds and summaries, per measure
    and comparison the matrices (rows A, columns B) of geometric means and interval bounds, the
    mean over pairs, what each game's scratch runs reached, progress and restarts."""
    curves = curves_of(results)
    thresholds = thresholds_of(cfg, curves)
    pairs = []
    for env_a in cfg.envs:
        for env_b in cfg.envs:
            if env_a == env_b or thresholds[env_b] is None:
                continue
            seeds = {}
            for seed in cfg.seeds:
                measured = pair_seed(cfg, env_a, env_b, seed, curves, thresholds[env_b])
                if measured is not None:
                    seeds[str(seed)] = measured
            summary = pair_summary(seeds) if seeds else {}
            pairs.append({"env_a": env_a, "env_b": env_b, "seeds": seeds, "summary": summary})
    matrix: dict[str, Any] = {
        "envs": list(cfg.envs), "seeds": cfg.seeds, "steps_per_phase": cfg.transfer.steps,
        "thresholds": thresholds, "pairs": pairs,
    }  # fmt: skip
    for measure in MEASURES:
        matrix[measure] = {
            key: grid(cfg.envs, pairs, key, measure) for key in COMPARISONS
        }  # rows A, columns B
    matrix["mean_over_pairs"] = mean_over_pairs(cfg, pairs)
    matrix["scratch"] = scratch_results(cfg, results)
    matrix["units_done"] = len(results)
    matrix["units_total"] = len(units_of(cfg))
    matrix["worker_restarts"] = sum(result["worker_restarts"] for result in results.values())
    return matrix


def grid(
    envs: tuple[str, ...], pairs: list[dict[str, Any]], key: str, measure: str
) -> dict[str, list[list[float | int | None]]]:
    """Rows A x columns B of a comparison's geometric mean, interval bounds and seed count."""
    found = {(pair["env_a"], pair["env_b"]): pair["summary"].get(key, {}).get(measure)
             for pair in pairs}  # fmt: skip
    out = {}
    for stat in ("mean", "low", "high", "seeds"):
        out[stat] = [
            [None if (cell := found.get((a, b))) is None else cell[stat] for b in envs]
            for a in envs
        ]
    return out


def mean_over_pairs(cfg: MatrixConfig, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The paper's headline: the speed-up averaged over every pair. Per seed whose pairs have
    all finished, the geometric mean over its pairs; then their mean and 95% interval over
    those seeds."""
    out: dict[str, Any] = {}
    total = len(cfg.envs) * (len(cfg.envs) - 1)
    for key in COMPARISONS:
        out[key] = {}
        for measure in MEASURES:
            per_seed = []
            for seed in map(str, cfg.seeds):
                values = [pair["seeds"][seed][key][measure] for pair in pairs
                          if seed in pair["seeds"]]  # fmt: skip
                if len(values) == total and all(value is not None for value in values):
                    per_seed.append(math.exp(sum(map(math.log, values)) / len(values)))
            if per_seed:
                out[key][measure] = ratio_summary(per_seed)
    return out


def scratch_results(cfg: MatrixConfig, results: dict[Unit, dict[str, Any]]) -> dict[str, Any]:
    """Per game, what learning it from scratch reached: the best and the final 20-episode mean
    over its seeds (mean and 95% half-width), to judge whether the budget teaches it."""
    out = {}
    for env_id in cfg.envs:
        runs = [result for unit, result in results.items()
                if unit.kind == "learn" and unit.env_a == env_id]  # fmt: skip
        if not runs:
            continue
        best = [max((v for _, v in learning_curve(r["episodes"], points=10**9,
                                                  full_window=True)), default=float("nan"))
                for r in runs]  # fmt: skip
        final = [final_mean_return(r["episodes"]) for r in runs]
        out[env_id] = {"seeds": len(runs), "best_mean_20": interval_of(best),
                       "final_mean_20": interval_of(final)}  # fmt: skip
    return out


def interval_of(values: list[float]) -> dict[str, float | None] | None:
    """``{"mean", "ci95"}`` of the finite ``values`` (a run without 20 episodes has none)."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return None
    mean, half = mean_interval(finite)
    return {"mean": mean, "ci95": half}


def plot_matrix(out: Path, matrix: dict[str, Any]) -> None:
    """Per measure, two annotated heat maps (PathNet and fine-tuning over scratch) of the log2
    geometric-mean speed-up, each cell with its 95% interval and seed count; PNG written
    atomically."""
    names = [env_id.split("/")[-1] for env_id in matrix["envs"]]
    size = 1.2 + 1.0 * len(names)
    fig = Figure(figsize=(2 * size + 1.5, 2 * size + 1.2), layout="constrained")
    axes = fig.subplots(len(MEASURES), len(PANELS), squeeze=False)
    cells = {
        (measure, key): np.array(
            [[np.nan if v is None else v for v in row] for row in matrix[measure][key]["mean"]],
            float,
        )
        for measure in MEASURES
        for key in PANELS
    }  # rows A, columns B
    logs = {k: np.log2(v) for k, v in cells.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in logs.values()])
    limit = max(float(np.abs(finite).max()) if finite.size else 0.0, 1.0)
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="0.85")
    image = None
    for row_axes, measure in zip(axes, MEASURES, strict=True):
        for ax, key in zip(row_axes, PANELS, strict=True):
            image = ax.imshow(logs[measure, key], cmap=cmap, vmin=-limit, vmax=limit)
            stats = matrix[measure][key]
            for (row, column), value in np.ndenumerate(cells[measure, key]):
                low, high = stats["low"][row][column], stats["high"][row][column]
                seeds = stats["seeds"][row][column]
                text = "—" if np.isnan(value) else f"{value:.2f}×"
                if low is not None:
                    text += f"\n[{low:.2f}, {high:.2f}]"
                if seeds is not None:
                    text += f"\nn={seeds}"
                ax.text(column, row, text, ha="center", va="center", fontsize=7)
            title = "PathNet" if key.startswith("pathnet") else "fine-tuning"
            ax.set_title(f"{title} over scratch: {MEASURES[measure]}", fontsize=8)
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
            ax.set_xlabel("target B", fontsize=8)
            if ax is row_axes[0]:
                ax.set_yticks(range(len(names)), names, fontsize=7)
                ax.set_ylabel("source A", fontsize=8)
            else:
                ax.set_yticks(range(len(names)), [])
    fig.suptitle("geometric mean over seeds [95% interval], n seeds", fontsize=9)
    fig.colorbar(image, ax=list(axes.flat), label="log2 speed-up", shrink=0.8)
    save_figure(fig, out, bbox_inches="tight")


class NoteColumn(ProgressColumn):
    """The matrix bar's note (units done, the seed), or a training's mean return."""

    def render(self, task: Task) -> Text:
        if "note" in task.fields:
            return Text(task.fields["note"])
        return Text(f"mean return {task.fields.get('mean', float('nan')):.2f}")


def make_matrix_progress(console: Console, enabled: bool) -> Progress:
    """The matrix's display: its units (done of all, time left) above the running unit's bar."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f} steps"),
        NoteColumn(), TimeElapsedColumn(), console=console, disable=not enabled,
    )  # fmt: skip


def main(cfg: MatrixConfig) -> dict[str, Any]:
    """Run (or resume) every unit and return the matrix written to matrix.json."""
    if cfg.resume is not None:
        run_path = Path(cfg.resume)
        saved = rd.load_config(run_path, MatrixConfig)
        transfer = dataclasses.replace(saved.transfer, progress=cfg.transfer.progress)
        cfg = dataclasses.replace(
            saved, resume=cfg.resume, repeats=max(saved.repeats, cfg.repeats), transfer=transfer,
            thresholds=cfg.thresholds if cfg.thresholds is not None else saved.thresholds,
        )  # fmt: skip
        check_units(cfg, run_path)
    else:
        if cfg.run_dir is not None and (Path(cfg.run_dir) / rd.CONFIG).exists():
            raise ValueError(f"{cfg.run_dir} already holds a run; use --resume {cfg.run_dir}")
    # bad ids and incompatible shapes fail before any write
    spaces = {env_id: env_spaces(env_id, cfg.transfer.seed) for env_id in cfg.envs}
    common_input_shape(*(shape for shape, _ in spaces.values()))
    if cfg.resume is None:
        run_path = rd.prepare_run_dir(cfg.run_dir, "transfer_matrix", cfg.transfer.seed)
    rd.save_config(run_path, dataclasses.replace(cfg, resume=None))  # repeats as extended
    units = units_of(cfg)
    results: dict[Unit, dict[str, Any]] = {}
    console = Console()
    started = time.monotonic()
    with make_matrix_progress(console, cfg.transfer.progress) as progress:
        overall: TaskID = progress.add_task(
            "matrix", total=len(units) * cfg.transfer.steps, note=""
        )
        trained: set[Unit] = set()  # this session's
        for index, unit in enumerate(units):
            path = unit.path(run_path)
            if (path / RESULT).exists():
                results[unit] = json.loads((path / RESULT).read_text())
            else:
                results[unit] = run_unit(cfg, unit, run_path, spaces, progress)
                trained.add(unit)
                for task in progress.task_ids:  # the finished unit's bar
                    if task != overall:
                        progress.remove_task(task)
            seeds_done = sum(all(u in results for u in units if u.seed == seed)
                             for seed in cfg.seeds)  # fmt: skip
            note = f"{index + 1}/{len(units)} units, {seeds_done}/{cfg.repeats} seeds done"
            if trained:  # time left at this session's pace
                left = (time.monotonic() - started) / len(trained) * (len(units) - index - 1)
                note += f", about {left / 60:.0f} min left"
            progress.update(overall, completed=(index + 1) * cfg.transfer.steps, note=note)
            if unit in trained:  # a line a log keeps, also without the display
                games = unit.env_a if unit.kind == "learn" else f"{unit.env_a} -> {unit.env_b}"
                console.print(f"{unit.kind} {games}, seed {unit.seed}: done ({note})")
            matrix = build_matrix(cfg, results)
            rd.write_json(run_path / MATRIX, matrix)  # after each unit: the partial matrix
            if unit in trained or index == len(units) - 1:
                plot_matrix(run_path / FIGURE, matrix)
    print_summary(console, matrix, run_path, len(trained), time.monotonic() - started)
    return matrix


def ratio_text(found: dict[str, Any] | None) -> str:
    """``1.23× [0.91, 1.66]`` (no interval from one seed); ``—`` for nothing measured."""
    if found is None:
        return "—"
    interval = "" if found["low"] is None else f" [{found['low']:.2f}, {found['high']:.2f}]"
    return f"{found['mean']:.2f}×{interval}"


def pair_table(matrix: dict[str, Any]) -> Table:
    """Per pair, PathNet's speed-ups over scratch and fine-tuning in both measures (geometric
    means over seeds with 95% intervals) and the seeds measured."""
    table = Table(title=f"PathNet-A3C transfer, {matrix['steps_per_phase']:,} steps a training")
    for column in ("A → B", "vs scratch: steps", "vs scratch: area", "vs fine-tune: steps",
                   "vs fine-tune: area", "seeds"):  # fmt: skip
        table.add_column(column, justify="right")
    for pair in matrix["pairs"]:
        summary = pair["summary"]
        cells = [
            ratio_text(summary.get(key, {}).get(measure))
            for key in ("pathnet_vs_scratch", "pathnet_vs_finetune")
            for measure in MEASURES
        ]
        names = f"{pair['env_a'].split('/')[-1]} → {pair['env_b'].split('/')[-1]}"
        table.add_row(names, *cells, str(len(pair["seeds"])))  # fmt: skip
    return table


def print_summary(
    console: Console, matrix: dict[str, Any], run_path: Path, trained: int, seconds: float
) -> None:
    console.print(pair_table(matrix))
    seeds = len(matrix["seeds"])
    for key in ("pathnet_vs_scratch", "pathnet_vs_finetune"):
        for measure, name in MEASURES.items():
            found = matrix["mean_over_pairs"][key].get(measure)
            if found is not None:
                interval = "" if found["low"] is None else \
                    f" [{found['low']:.2f}, {found['high']:.2f}]"  # fmt: skip
                console.print(
                    f"{key.replace('_', ' ')} ({name}, mean over pairs): "
                    f"{found['mean']:.2f}x{interval} over {found['seeds']} of {seeds} seeds"
                )
    restarts = matrix["worker_restarts"]
    console.print(
        f"Transfer matrix: {trained} trainings in {seconds / 60:.1f} min"
        f"{f', {restarts} worker restarts' if restarts else ''}. "
        f"{run_path / MATRIX}, {run_path / FIGURE}"
    )


if __name__ == "__main__":
    run_cli(main, MatrixConfig, description=__doc__.split("\n\n")[0])
