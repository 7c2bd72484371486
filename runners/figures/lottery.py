"""The lottery-ticket figures (Frankle & Carbin 2019, arXiv:1803.03635): final return against
sparsity for the ticket and the controls (Fig. 1 style), and for image tasks the early-stopping
iteration and test accuracy against the percent of weights remaining, on the paper's reversed
log axis (its LeNet figures, Figs. 3-4): means over repeats with 95% intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from pathevo.envs.digits import is_image_task
from pathevo.runners.plumbing.plots import save_figure

STYLES = {"ticket": ("tab:blue", "o"), "reinit": ("tab:orange", "s"),
          "random_mask": ("tab:green", "^"), "permuted": ("tab:purple", "D"),
          "random_reinit": ("tab:red", "v")}  # fmt: skip


def plot_lottery(out: Path, summary: dict[str, Any], title: str) -> None:
    """Final mean return (or accuracy) per condition against sparsity, with 95% intervals over
    repeats where there are several; PNG written atomically.

    summary: runners/lottery.py's summary (``dense``, ``levels`` and ``conditions``).
    """
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    sparsity = [100 * level["sparsity"] for level in summary["levels"]]
    for condition in summary["conditions"]:
        colour, marker = STYLES[condition]
        values = [level[condition] for level in summary["levels"]]
        errors = [level.get(f"{condition}_ci95") or 0.0 for level in summary["levels"]]
        ax.errorbar(sparsity, values, yerr=errors, color=colour, marker=marker, capsize=3,
                    label=condition)  # fmt: skip
    ax.axhline(summary["dense"]["final_mean_return"], color="0.4", linestyle="--",
               linewidth=1, label="dense")  # fmt: skip
    ax.set_xlabel(f"{summary['scope']} weights pruned (%)")
    images = is_image_task(summary["env_id"])
    ax.set_ylabel("training accuracy (last 20 batches)" if images else "final mean return (20 ep.)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


PANELS = (
    ("early_stop_step", 1.0, "early-stopping iteration\n(minimum validation loss)"),
    ("test_accuracy", 100.0, "test accuracy (%)\nat early stopping"),
    ("final_test_accuracy", 100.0, "test accuracy (%)\nat the end of training"),
)
"""The image-task figure's panels: measure, scale, y label."""


def plot_early_stopping(out: Path, summary: dict[str, Any], title: str) -> None:
    """Three panels against the percent of weights remaining (log scale, reversed, ticks at the
    rounds' levels): the early-stopping iteration, the test accuracy there, the test accuracy at
    the end of training. One line per condition, each starting at the dense network (100%),
    mean over repeats with its 95% interval as a band; PNG written atomically.

    summary: runners/lottery.py's summary of an image task (``test_accuracy`` and the other
    image measures in ``dense`` and for every condition of ``levels``).
    """
    dense, levels = summary["dense"], summary["levels"]
    remaining = [100.0] + [100 * (1 - level["sparsity"]) for level in levels]
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, len(PANELS))
    for ax, (measure, scale, label) in zip(axes, PANELS, strict=True):
        for condition in summary["conditions"]:
            colour, marker = STYLES[condition]
            key = f"{condition}_{measure}"
            means = [dense[measure]] + [level[key] for level in levels]
            halves = [dense[f"{measure}_ci95"]] + [level[f"{key}_ci95"] for level in levels]
            means = [scale * m for m in means]
            halves = [scale * (h or 0.0) for h in halves]
            ax.plot(remaining, means, color=colour, marker=marker, markersize=4, label=condition)
            ax.fill_between(remaining, [m - h for m, h in zip(means, halves, strict=True)],
                            [m + h for m, h in zip(means, halves, strict=True)], color=colour,
                            alpha=0.15, linewidth=0)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(remaining)
        ax.set_xticklabels([f"{r:.3g}" for r in remaining], fontsize=7, rotation=60)
        ax.minorticks_off()
        ax.set_xlim(remaining[0] * 1.15, remaining[-1] / 1.15)  # reversed: 100% on the left
        ax.set_xlabel(f"percent of {summary['scope']} weights remaining")
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    repeats = len(summary["seeds"])
    bands = f"mean and 95% interval of {repeats} seeds" if repeats > 1 else "one seed"
    fig.suptitle(f"{title}, rewound to step {summary['rewind_steps']} ({bands})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)
