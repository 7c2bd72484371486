"""Pictures of paths: TensorBoard images of module usage, PNG figures (as PathNet's Fig. 2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

CELL = 12


def usage_image(
    usage: torch.Tensor, frozen: torch.Tensor | Sequence[torch.Tensor] | None = None
) -> np.ndarray:
    """An RGB uint8 image [3, L*CELL, max M*CELL] of module usage per layer.

    usage: [L, max M] counts (brightness = share of the population using the module);
    frozen: per layer a bool [M_l] (or one [L, M] tensor), drawn in blue (frozen modules also
    used are cyan). Layers may differ in size (a grown library): cells past a layer's last
    module are dark grey.
    """
    share = usage.float() / max(float(usage.max()), 1.0)  # [L, max M] in [0, 1]
    red = green = share
    blue = torch.zeros_like(share)
    if frozen is not None:
        rows = [torch.as_tensor(row, dtype=torch.bool) for row in frozen]
        mask = torch.zeros_like(share, dtype=torch.bool)  # [L, max M]
        absent = torch.ones_like(mask)
        for layer, row in enumerate(rows):
            mask[layer, : len(row)] = row
            absent[layer, : len(row)] = False
        blue = mask.float()
        red = share * (~mask).float()
        red, green, blue = (torch.where(absent, 0.15, channel) for channel in (red, green, blue))
    image = torch.stack([red, green, blue])  # [3, L, max M]
    image = image.repeat_interleave(CELL, 1).repeat_interleave(CELL, 2)
    image[:, ::CELL, :] = 0.25  # grid lines between layers
    image[:, :, ::CELL] = 0.25
    return (image * 255).round().to(torch.uint8).numpy()


def routing_image(
    picks: Sequence[float] | torch.Tensor, allowed: Sequence[bool] | torch.Tensor
) -> np.ndarray:
    """An RGB uint8 image [3, CELL, E*CELL] of an MoE layer's routing for one task.

    Brightness (white) = the expert's share of the gate's picks; experts the path does not
    offer the gate are dark red.
    """
    counts = torch.as_tensor(picks, dtype=torch.float)  # [E]
    offered = torch.as_tensor(allowed, dtype=torch.bool)
    share = (counts / max(float(counts.max()), 1.0)).unsqueeze(0)  # [1, E]
    red = torch.where(offered, share, torch.full_like(share, 0.35))
    image = torch.stack([red, share, share])  # [3, 1, E]
    image = image.repeat_interleave(CELL, 1).repeat_interleave(CELL, 2)
    image[:, :, ::CELL] = 0.25  # grid lines between experts
    return (image * 255).round().to(torch.uint8).numpy()


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
    fig, axes = plt.subplots(1, columns, figsize=(3.2 * columns, 3.2), squeeze=False)
    colours = np.array([[1, 1, 1], [0.25, 0.45, 0.85], [0.95, 0.55, 0.1], [0.2, 0.7, 0.3]])
    for ax, (title, grid_a, grid_b) in zip(axes[0], panels, strict=False):
        code = (grid_a > 0).astype(int) + 2 * (grid_b > 0).astype(int)  # 1 A, 2 B, 3 both
        ax.imshow(colours[code], aspect="auto", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("module")
        ax.set_ylabel("layer")
        ax.set_xticks(range(grid_a.shape[1]))
        ax.set_yticks(range(grid_a.shape[0]))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours[1:]]
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
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)


def plot_learning_curves(
    out: Path,
    curves: dict[str, Sequence[Sequence[float]]],
    title: str,
    threshold: float | None = None,
) -> None:
    """Mean return against environment steps, one line per condition; PNG written atomically.

    curves: condition -> [[step, mean return], ...]; threshold: drawn as a dashed line.
    """
    fig, ax = plt.subplots(figsize=(6, 3.8))
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
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)
