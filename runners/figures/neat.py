"""Pictures of neuroevolution: a CPPN's graph, fitness per generation, generated weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from pathevo.modules.cppn import CPPNGraph
from pathevo.runners.plumbing.plots import save_figure

INPUT_NAMES = ("x1", "y1", "z1", "x2", "y2", "z2", "d")


def weight_image(weights: torch.Tensor, cell: int = 4) -> np.ndarray:
    """An RGB uint8 image [3, out*cell, in*cell] of a weight matrix [out, in]: red positive,
    blue negative, black unexpressed (HyperNEAT's zeroed connections)."""
    scale = max(float(weights.abs().max()), 1e-9)
    share = (weights.detach().float() / scale).clamp(-1, 1)  # [O, I]
    image = torch.stack([share.clamp(min=0), torch.zeros_like(share), (-share).clamp(min=0)])
    image = image.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    return (image * 255).round().to(torch.uint8).numpy()


def depths(graph: CPPNGraph) -> dict[int, int]:
    """Each node's column: inputs 0, every other node one more than its deepest source; the
    outputs share the last column."""
    depth = {-(i + 1): 0 for i in range(graph.num_inputs)}
    sources: dict[int, list[int]] = {node.key: [] for node in graph.nodes}
    for src, dst, _ in graph.connections:
        sources.setdefault(dst, []).append(src)

    def visit(key: int, seen: frozenset[int]) -> int:
        if key not in depth:
            inputs = [s for s in sources.get(key, []) if s not in seen]
            depth[key] = 1 + max((visit(s, seen | {key}) for s in inputs), default=0)
        return depth[key]

    for node in graph.nodes:
        visit(node.key, frozenset())
    last = max([depth[o] for o in range(graph.num_outputs)] + [1])
    for output in range(graph.num_outputs):
        depth[output] = last
    return depth


def plot_cppn(out: Path, graph: CPPNGraph, title: str) -> None:
    """The CPPN as a layered graph: nodes labelled with their activation, edges coloured by the
    weight's sign (red +, blue −) and drawn as wide as its magnitude. PNG written atomically."""
    depth = depths(graph)
    columns: dict[int, list[int]] = {}
    for key in sorted(depth):
        columns.setdefault(depth[key], []).append(key)
    position = {
        key: (column, (len(keys) - 1) / 2 - row)
        for column, keys in columns.items()
        for row, key in enumerate(keys)
    }
    activation = {node.key: node.activation for node in graph.nodes}
    fig = Figure(figsize=(2 + 1.6 * len(columns), 1 + 0.6 * max(map(len, columns.values()))))
    ax = fig.subplots()
    largest = max([abs(w) for _, _, w in graph.connections] + [1e-9])
    for src, dst, weight in graph.connections:
        (x0, y0), (x1, y1) = position[src], position[dst]
        ax.annotate(
            "", (x1, y1), (x0, y0),
            arrowprops={"arrowstyle": "->", "color": "tab:red" if weight > 0 else "tab:blue",
                        "lw": 0.5 + 2.5 * abs(weight) / largest, "alpha": 0.7,
                        "shrinkA": 9, "shrinkB": 9},
        )  # fmt: skip
    for key, (x, y) in position.items():
        if key < 0:
            label, colour = _input_name(-key - 1), "0.85"
        elif key < graph.num_outputs:
            label, colour = f"out{key}\n{activation.get(key, '')}", "tab:olive"
        else:
            label, colour = activation.get(key, "?"), "wheat"
        ax.scatter([x], [y], s=650, color=colour, edgecolors="0.3", zorder=3)
        ax.text(x, y, label, ha="center", va="center", fontsize=6, zorder=4)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    ax.margins(0.15)
    save_figure(fig, out)


def plot_fitness(out: Path, history: Sequence[dict[str, Any]], title: str) -> None:
    """Max and mean fitness and the species count per generation. PNG written atomically."""
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    generations = range(len(history))
    ax.plot(generations, [r["max"] for r in history], label="max fitness")
    ax.plot(generations, [r["mean"] for r in history], label="mean fitness")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness (mean return)")
    species = ax.twinx()
    species.plot(generations, [r["species"] for r in history], color="0.6", linestyle=":")
    species.set_ylabel("species", color="0.4")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    save_figure(fig, out)


def _input_name(index: int) -> str:
    return INPUT_NAMES[index] if index < len(INPUT_NAMES) else f"in{index}"
