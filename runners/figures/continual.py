"""Figures of runners/continual.py: accuracy matrices R side by side, library occupancy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pathevo.runners.plumbing.plots import save_figure

Matrix = list[list[float | None]]


def matrix_figure(matrix: Matrix, title: str, tasks: tuple[str, ...]) -> Figure:
    """One R matrix (for TensorBoard's ``add_figure``)."""
    fig = Figure(figsize=(3.6, 3.2))
    ax = fig.subplots()
    draw_matrix(ax, matrix, title, tasks, value_range([matrix]))
    fig.tight_layout()
    return fig


def value_range(matrices: list[Matrix]) -> tuple[float, float]:
    """One colour scale for several matrices (so conditions compare by colour)."""
    values = [v for matrix in matrices for row in matrix for v in row if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    return low, max(high, low + 1e-9)


def draw_matrix(
    ax: Axes, matrix: Matrix, title: str, tasks: tuple[str, ...], scale: tuple[float, float]
) -> None:
    """R as an annotated heat map: rows = after learning task i, columns = evaluated task j."""
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    ax.imshow(values, cmap="viridis", vmin=scale[0], vmax=scale[1])
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            bright = (value - scale[0]) / (scale[1] - scale[0]) > 0.6  # viridis: yellow
            colour = "k" if bright else "w"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    short = [task.split("/")[-1] for task in tasks]
    ax.set_xticks(range(len(tasks)), short, fontsize=7, rotation=45)
    ax.set_yticks(range(len(tasks)), short, fontsize=7)
    ax.set_xlabel("evaluated task j", fontsize=8)
    ax.set_ylabel("after learning task i", fontsize=8)
    ax.set_title(title, fontsize=9)


def plot(out: Path, summary: dict[str, Any]) -> None:
    """R of every condition side by side, then PathNet's occupancy per layer after each task."""
    conditions = summary["conditions"]
    panels = len(conditions) + ("occupancy" in summary)
    fig = Figure(figsize=(3.6 * panels, 3.4))
    axes = fig.subplots(1, panels, squeeze=False)
    tasks = tuple(summary["tasks"])
    scale = value_range([condition["R"] for condition in conditions.values()])
    for ax, (name, condition) in zip(axes[0], conditions.items(), strict=False):
        title = f"{name}: ACC {condition['acc']:.2f} BWT {condition['bwt']:+.2f}"
        draw_matrix(ax, condition["R"], title, tasks, scale)
    if "occupancy" in summary:
        ax = axes[0][-1]
        shares = np.array(summary["occupancy"])  # [tasks, L]
        for layer in range(shares.shape[1]):
            ax.plot(range(1, len(shares) + 1), shares[:, layer], marker="o", label=f"layer {layer}")
        ax.set_ylim(0, 1.05)
        ax.set_xticks(range(1, len(shares) + 1))
        ax.set_xlabel("tasks learned", fontsize=8)
        ax.set_ylabel("fraction of modules frozen", fontsize=8)
        ax.set_title("PathNet library occupancy", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out)
