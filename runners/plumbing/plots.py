"""PNG figures of finished runs: paths (as PathNet's Fig. 2) and learning curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pathevo.runners.plumbing.run_dir import atomic_write


def path_grid(path: Sequence[Sequence[int]], modules: int) -> np.ndarray:
    """A [L, M] 0/1 array marking the modules of a path given per layer."""
    grid = np.zeros((len(path), modules))
    for layer, ids in enumerate(path):
        grid[layer, list(ids)] = 1
    return grid


def plot_transfer_paths(
    out: Path,
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    bars: dict[str, tuple[float, float]],
    ylabel: str,
) -> None:
    """One panel per task pair: A's frozen path, B's final path and their overlap; then a bar chart.

    panels: (title, grid_a [L, M], grid_b [L, M]); bars: condition -> (mean, std).
    """
    columns = len(panels) + 1
    fig = Figure(figsize=(3.2 * columns, 3.2))
    axes = fig.subplots(1, columns, squeeze=False)
    colours = np.array([[1, 1, 1], [0.25, 0.45, 0.85], [0.95, 0.55, 0.1], [0.2, 0.7, 0.3]])
    for ax, (title, grid_a, grid_b) in zip(axes[0], panels, strict=False):
        code = (grid_a > 0).astype(int) + 2 * (grid_b > 0).astype(int)  # 1 A, 2 B, 3 both
        ax.imshow(colours[code], aspect="auto", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("module")
        ax.set_ylabel("layer")
        ax.set_xticks(range(grid_a.shape[1]))
        ax.set_yticks(range(grid_a.shape[0]))
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in colours[1:]]
    axes[0][0].legend(
        handles, ["A only (frozen)", "B only", "A and B"], fontsize=7, loc="lower left"
    )
    ax = axes[0][-1]
    names = list(bars)
    ax.bar(
        names,
        [bars[n][0] for n in names],
        yerr=[bars[n][1] for n in names],
        capsize=4,
        color=["0.6", "0.4", "tab:green"][: len(names)],
    )
    ax.set_ylabel(ylabel)
    ax.set_title("mean ± std over pairs", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)


def plot_learning_curves(
    out: Path,
    curves: dict[str, Sequence[Sequence[float]]],
    title: str,
    threshold: float | None = None,
) -> None:
    """Mean return against environment steps, one line per condition; PNG written atomically.

    curves: condition -> [[step, mean return], ...]; threshold: drawn as a dashed line.
    """
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    for name, curve in curves.items():
        if curve:
            steps, values = zip(*curve, strict=True)
            ax.plot(steps, values, label=name)
    if threshold is not None:
        ax.axhline(threshold, color="0.5", linestyle="--", linewidth=1, label="threshold")
    ax.set_xlabel("environment steps (all workers)")
    ax.set_ylabel("mean return (last 20 episodes)")
    ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


def save_figure(fig: Figure, out: Path, **savefig: Any) -> None:
    """Write ``fig`` to the PNG ``out`` atomically (``savefig``: e.g. ``bbox_inches``).

    Figures are made with :class:`matplotlib.figure.Figure`, not pyplot: no backend is chosen
    and no global figure state is kept, so importing pathevo never changes matplotlib's backend.
    """
    atomic_write(out, lambda handle: fig.savefig(handle, format="png", dpi=120, **savefig))
