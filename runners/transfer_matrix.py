"""PathNet-A3C transfer between every ordered pair of games: a matrix of speed-ups.

Fernando et al. 2017, arXiv:1701.08734, Fig. 6-7 (the Atari and Labyrinth transfer matrices). Every
pair (A, B), A != B, of ``--envs`` is one run of :mod:`pathevo.runners.atari_transfer` in its own
sub-directory; ``matrix.json`` holds, per source row A and target column B, PathNet's speed-up over
learning B from scratch and fine-tuning's speed-up over scratch (``null`` on the diagonal and for
pairs not yet run), and ``matrix.png`` draws both as annotated heat maps. Works for any family of
ids whose observations share a library (Labyrinth, MinAtar, ALE, ...).
Run ``pathevo transfer_matrix --envs ID ID ID``; ``--resume RUN_DIR`` skips the pairs that already
have a summary.json.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from pathevo.agents.pathnet_a3c import common_input_shape
from pathevo.agents.phase import env_spaces
from pathevo.runners import atari_transfer
from pathevo.runners.atari_transfer import TransferConfig
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli
from pathevo.runners.plumbing.plots import save_figure

MATRIX = "matrix.json"
FIGURE = "matrix.png"
PANELS = {"pathnet_vs_scratch": "PathNet", "finetune_vs_scratch": "fine-tuning"}
"""Matrix key -> panel title; both are speed-ups over learning B from scratch."""


@dataclass
class MatrixConfig:
    """Transfer between every ordered pair of ``envs`` (PathNet-A3C, scratch and fine-tuning)."""

    envs: tuple[str, ...] = (
        "MinAtar/Breakout-v1",
        "MinAtar/SpaceInvaders-v1",
        "MinAtar/Asterix-v1",
    )
    """Game ids (at least 2, distinct); every ordered pair (A, B), A != B, is one transfer run."""
    transfer: TransferConfig = field(default_factory=TransferConfig)
    """Settings of every pair's run (its env-a, env-b, run-dir and resume are set per pair)."""
    run_dir: str | None = None
    """Where to write the matrix (default: runs/transfer_matrix-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the matrix in this directory, skipping pairs with a summary.json (other flags are
    ignored)."""

    def __post_init__(self) -> None:
        if len(self.envs) < 2:
            raise ValueError(f"a transfer matrix needs at least 2 ids, got {list(self.envs)}")
        duplicates = sorted({env_id for env_id in self.envs if self.envs.count(env_id) > 1})
        if duplicates:
            raise ValueError(f"duplicate ids in --envs: {', '.join(duplicates)}")


def pair_dir(run_path: Path, env_a: str, env_b: str) -> Path:
    """The sub-run directory of the pair (A, B): ids with anything but [A-Za-z0-9.-] as ``_``."""

    def slug(env_id: str) -> str:
        return re.sub(r"[^A-Za-z0-9.-]+", "_", env_id)

    return run_path / f"{slug(env_a)}__{slug(env_b)}"


def run_pair(cfg: MatrixConfig, run_path: Path, env_a: str, env_b: str) -> dict[str, Any]:
    """The pair's summary: read if its sub-run finished, else the sub-run resumed or started."""
    path = pair_dir(run_path, env_a, env_b)
    if (path / rd.SUMMARY).exists():
        return json.loads((path / rd.SUMMARY).read_text())
    if (path / rd.CONFIG).exists():
        return atari_transfer.main(TransferConfig(resume=str(path)))
    pair = dataclasses.replace(
        cfg.transfer, env_a=env_a, env_b=env_b, run_dir=str(path), resume=None
    )
    return atari_transfer.main(pair)


def check_pairs(cfg: MatrixConfig, run_path: Path) -> None:
    """Before a resumed matrix trains: every unfinished pair's sub-run has a readable config and
    checkpoint (one bad pair would otherwise stop the matrix after hours of other pairs)."""
    for env_a in cfg.envs:
        for env_b in cfg.envs:
            path = pair_dir(run_path, env_a, env_b)
            if env_a != env_b and (path / rd.CONFIG).exists() and not (path / rd.SUMMARY).exists():
                rd.load_config(path, TransferConfig)
                atari_transfer.load_state(path)  # refused or malformed: before any pair runs


def speedups(summary: dict[str, Any]) -> dict[str, float]:
    """PathNet's and fine-tuning's speed-ups over scratch (a condition never solved used the
    whole phase budget, as in the transfer summary)."""
    budget = summary["steps_per_phase"]
    conditions = summary["conditions"]
    finetune = conditions["finetune"]["steps_to_threshold"] or budget
    scratch = conditions["scratch"]["steps_to_threshold"] or budget
    return {
        "pathnet_vs_scratch": summary["speedup_vs_scratch"],
        "finetune_vs_scratch": scratch / finetune,
    }


def build_matrix(
    envs: tuple[str, ...], summaries: dict[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    """``matrix.json``: the ids and, per key of PANELS, rows A x columns B (None where missing)."""
    matrix: dict[str, Any] = {"envs": list(envs)}
    for key in PANELS:
        matrix[key] = [
            [speedups(summaries[a, b])[key] if (a, b) in summaries else None for b in envs]
            for a in envs
        ]
    return matrix


def plot_matrix(out: Path, matrix: dict[str, Any]) -> None:
    """Two annotated heat maps (PathNet, fine-tuning) of log2 speed-up; PNG written atomically."""
    names = [env_id.split("/")[-1] for env_id in matrix["envs"]]
    size = 1.0 + 0.8 * len(names)
    fig = Figure(figsize=(2 * size + 1.5, size + 0.8))
    axes = fig.subplots(1, len(PANELS))
    values = {
        key: np.array([[np.nan if v is None else v for v in row] for row in matrix[key]], float)
        for key in PANELS
    }  # rows A, columns B
    logs = {key: np.log2(v) for key, v in values.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in logs.values()])
    limit = max(float(np.abs(finite).max()) if finite.size else 0.0, 1.0)
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="0.85")
    for ax, (key, title) in zip(axes, PANELS.items(), strict=True):
        image = ax.imshow(logs[key], cmap=cmap, vmin=-limit, vmax=limit)
        for (row, column), value in np.ndenumerate(values[key]):
            text = "—" if np.isnan(value) else f"{value:.2f}×"
            ax.text(column, row, text, ha="center", va="center", fontsize=8)
        ax.set_title(f"{title}: speed-up over scratch", fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_xlabel("target B")
        if ax is axes[0]:  # the panels share their rows: name them once, at the left
            ax.set_yticks(range(len(names)), names, fontsize=8)
            ax.set_ylabel("source A")
        else:
            ax.set_yticks(range(len(names)), [])
    fig.colorbar(image, ax=list(axes), label="log2 speed-up", shrink=0.8)
    save_figure(fig, out, bbox_inches="tight")


def main(cfg: MatrixConfig) -> dict[str, Any]:
    """Run (or resume) every ordered pair and return the matrix written to matrix.json."""
    if cfg.resume is not None:
        run_path = Path(cfg.resume)
        cfg = dataclasses.replace(rd.load_config(run_path, MatrixConfig), resume=cfg.resume)
        check_pairs(cfg, run_path)
    else:  # bad ids and incompatible shapes fail before any write
        if cfg.run_dir is not None and (Path(cfg.run_dir) / rd.CONFIG).exists():
            raise ValueError(f"{cfg.run_dir} already holds a run; use --resume {cfg.run_dir}")
        common_input_shape(*(env_spaces(env_id, cfg.transfer.seed)[0] for env_id in cfg.envs))
        run_path = rd.prepare_run_dir(cfg.run_dir, "transfer_matrix", cfg.transfer.seed)
        rd.save_config(run_path, cfg)
    summaries: dict[tuple[str, str], dict[str, Any]] = {}
    for env_a in cfg.envs:
        for env_b in cfg.envs:
            if env_a != env_b:
                summaries[env_a, env_b] = run_pair(cfg, run_path, env_a, env_b)
                matrix = build_matrix(cfg.envs, summaries)
                rd.write_json(run_path / MATRIX, matrix)  # after each pair: partial results
    plot_matrix(run_path / FIGURE, matrix)
    print(f"Transfer matrix: {run_path / MATRIX}, {run_path / FIGURE}")
    return matrix


if __name__ == "__main__":
    run_cli(main, MatrixConfig, description=__doc__.split("\n\n")[0])
