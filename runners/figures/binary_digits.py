"""The binary-digit transfer recipe's outputs: its learning-curve figure and console tables.

Read from the summary ``pathevo binary_digits`` writes (:mod:`pathevo.runners.binary_digits`):
generations to the threshold per condition with PathNet's paired speed-ups (Fernando et al.
2017's MNIST protocol) and held-out accuracies with PathNet's paired differences (its CIFAR/SVHN
protocol).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from pathevo.runners.plumbing.paired import CONDITIONS, CONTROLS
from pathevo.runners.plumbing.plots import save_figure


def plot_curves(out: Path, summary: dict[str, Any]) -> None:
    """Held-out accuracy of the best path on B against generations (PNG, written atomically):
    per condition the mean over pairs with its 95% band (left), and PathNet's paired
    difference from each control with its 95% band (right: above 0, PathNet ahead)."""
    fig = Figure(figsize=(11, 3.8))
    left, right = fig.subplots(1, 2)
    curves = summary["curves"]
    for condition in CONDITIONS:
        band(left, curves[condition], condition, scale=1.0)
    for control in CONTROLS:
        band(right, curves[f"pathnet_minus_{control}"], f"PathNet − {control}", scale=100.0)
    right.axhline(0.0, color="0.5", linewidth=1)
    left.set_ylabel("held-out accuracy of the best path")
    right.set_ylabel("paired difference (accuracy points)")
    for ax in (left, right):
        ax.set_xlabel("generations on B")
        ax.legend(fontsize=8)
    fig.suptitle(f"{len(summary['pairs'])} pairs: means and 95% intervals", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)


def band(ax: Any, curve: dict[str, Any], label: str, scale: float) -> None:
    """One mean curve with its 95% band (where the interval exists) on ``ax``."""
    gens, mean = curve["generation"], scale * np.array(curve["mean"])
    ax.plot(gens, mean, label=label)
    if all(half is not None for half in curve["ci95"]):
        half = scale * np.array(curve["ci95"])
        ax.fill_between(gens, mean - half, mean + half, alpha=0.2)


def interval(mean: float, half: float | None) -> str:
    return f"{mean:.1f}" if half is None else f"{mean:.1f} ± {half:.1f}"


def print_table(console: Console, summary: dict[str, Any], run_path: Path) -> None:
    stats = summary["statistics"]["all"]
    table = Table(title=f"Generations to {summary['threshold']} training accuracy on task B")
    table.add_column("condition")
    table.add_column("mean ± 95% CI", justify="right")
    table.add_column("median", justify="right")
    table.add_column("censored", justify="right")
    table.add_column("per pair", justify="left")
    for condition in CONDITIONS:
        row = stats[condition]
        values = summary[f"{condition}_generations"]
        shown = str(values) if len(values) <= 10 else f"{str(values[:10])[:-1]}, …]"
        table.add_row(
            condition, interval(row["mean"], row["ci95"]), f"{row['median']:g}",
            f"{row['censored']}/{len(values)}", shown,
        )  # fmt: skip
    console.print(table)
    for control in CONTROLS:
        paired = stats[f"pathnet_vs_{control}"]
        half = paired["log_ratio_ci95"]
        low, high = (
            (math.exp(paired["mean_log_ratio"] - half), math.exp(paired["mean_log_ratio"] + half))
            if half is not None
            else (math.nan, math.nan)
        )
        console.print(
            f"PathNet vs {control}: speed-up {paired['geometric_speedup']:.2f}× ({control}'s "
            f"generations / PathNet's, geometric mean over pairs, 95% CI {low:.2f}–{high:.2f}; "
            "> 1: PathNet faster); faster on "
            f"{paired['pathnet_faster']}, slower on {paired['pathnet_slower']} of "
            f"{stats['pairs']} pairs"
        )
    print_accuracies(console, summary)
    console.print(f"Module reuse {summary['module_reuse_mean']:.0%}.  Run: {run_path}")


ACCURACY_MEASURES = {
    "fixed_accuracy": "at gen. {fixed}",
    "test_accuracy": "at the end",
    "curve_mean_accuracy": "curve mean",
}


def print_accuracies(console: Console, summary: dict[str, Any]) -> None:
    """The held-out accuracy table: per measure and condition the mean with its interval, and
    PathNet's paired difference from each control."""
    stats = summary["accuracy_statistics"]["all"]
    table = Table(title="Held-out accuracy of the best path on task B (mean ± 95% CI, %)")
    table.add_column("measure")
    for condition in CONDITIONS:
        table.add_column(condition, justify="right")
    for control in CONTROLS:
        table.add_column(f"PathNet−{control}", justify="right")
    for measure, label in ACCURACY_MEASURES.items():
        if measure not in stats:
            continue
        row = stats[measure]
        cells = [percent(row[c]) for c in CONDITIONS]
        for control in CONTROLS:
            paired = row[f"pathnet_minus_{control}"]
            cells.append(f"{percent(paired)} {paired['pathnet_above']}↑{paired['pathnet_below']}↓")
        table.add_row(label.format(fixed=summary.get("fixed_generations")), *cells)
    console.print(table)


def percent(row: dict[str, Any]) -> str:
    """``mean ± half`` of an accuracy (or a difference of accuracies) in percent."""
    if row["ci95"] is None:
        return f"{100 * row['mean']:.1f}"
    return f"{100 * row['mean']:.1f} ± {100 * row['ci95']:.1f}"
