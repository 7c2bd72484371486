"""The lottery-ticket figure (Frankle & Carbin 2019, arXiv:1803.03635, Fig. 1 style): final
return against sparsity for the ticket and both controls (means over repeats with 95% intervals),
the dense network as a dashed line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from pathevo.envs.digits import is_image_task
from pathevo.runners.plumbing.plots import save_figure

STYLES = {"ticket": ("tab:blue", "o"), "reinit": ("tab:orange", "s"),
          "random_mask": ("tab:green", "^")}  # fmt: skip


def plot_lottery(out: Path, summary: dict[str, Any], title: str) -> None:
    """Final mean return (or accuracy) per condition against sparsity, with 95% intervals over
    repeats where there are several; PNG written atomically.

    summary: runners/lottery.py's summary (``dense`` and ``levels``).
    """
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    sparsity = [100 * level["sparsity"] for level in summary["levels"]]
    for condition, (colour, marker) in STYLES.items():
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
