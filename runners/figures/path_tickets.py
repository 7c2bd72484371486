"""The path-ticket run's figure, table and TensorBoard summary (runners/path_tickets.py): A's
held-out accuracy and B's generations against the sparsity of A's frozen path, means over units
with 95% intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from torch.utils.tensorboard import SummaryWriter

from pathevo.runners.plumbing.plots import save_figure


def _mean(stat: dict[str, Any], scale: float = 1.0) -> str:
    half = stat["ci95"]
    return f"{scale * stat['mean']:.1f}" + ("" if half is None else f" ± {scale * half:.1f}")


def plot_levels(out: Path, summary: dict[str, Any]) -> None:
    """Two panels against the percent of the path's weights pruned: A's held-out accuracy (the
    IMP levels, the evolved path as a dashed line) and B's generations to the threshold with
    each frozen path (scratch dashed); PNG written atomically."""
    conditions = summary["conditions"]
    levels = [c for c in conditions if c.startswith("r")]
    pruned = [100 * conditions[c]["sparsity"]["mean"] for c in levels]
    fig = Figure(figsize=(9, 3.6))
    panels = fig.subplots(1, 2)
    for ax, key, scale, label, reference in (
        (panels[0], "a_accuracy", 100.0, "A: held-out accuracy (%)", "evolved"),
        (panels[1], "b_generations", 1.0, "B: generations to the threshold", "scratch"),
    ):
        values = [scale * conditions[c][key]["mean"] for c in levels]
        errors = [scale * (conditions[c][key]["ci95"] or 0.0) for c in levels]
        ax.errorbar(pruned, values, yerr=errors, marker="o", capsize=3, label="IMP level")
        ax.axhline(scale * conditions[reference][key]["mean"], color="0.4", linestyle="--",
                   linewidth=1, label=reference)  # fmt: skip
        if key == "b_generations":
            ax.axhline(conditions["evolved"][key]["mean"], color="tab:green", linestyle=":",
                       linewidth=1, label="evolved path (unpruned)")  # fmt: skip
        ax.set_xlabel("weights of A's path pruned (%)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"Tickets inside a PathNet path: {summary['units']} units "
                 f"(pairs × seeds), 95% intervals", fontsize=10)  # fmt: skip
    fig.tight_layout()
    save_figure(fig, out)


def print_table(console: Console, summary: dict[str, Any], run_path: Path) -> None:
    """One row per frozen-path condition: sparsity, A's accuracy and generations, B's."""
    table = Table(title=f"Path tickets: {summary['units']} units, means ± 95% intervals")
    for column in ("condition", "pruned %", "A acc. %", "A gens", "B gens", "B solved",
                   "B acc. %"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, row in summary["conditions"].items():
        table.add_row(
            name,
            _mean(row["sparsity"], 100) if "sparsity" in row else "",
            _mean(row["a_accuracy"], 100) if "a_accuracy" in row else "",
            _mean(row["a_generations"]) if "a_generations" in row else "",
            _mean(row["b_generations"]),
            f"{row['b_solved']}/{summary['units']}",
            _mean(row["b_accuracy"], 100),
        )
    console.print(table)
    kept = summary["a_keeps_accuracy"]
    line = f"A keeps its accuracy (within 1 point of r0) up to {kept['held_to']:.1%} pruned"
    if kept["below_at"] is not None:
        line += f", falls below from {kept['below_at']:.1%}"
    console.print(line)
    console.print(f"Run: {run_path}")


def log_unit(writer: SummaryWriter, entry: dict[str, Any], rounds: int) -> None:
    """A unit's results (or, ``entry`` of :func:`mean_entry`, their means) under the ``summary/``
    tags: sparsity, A's accuracy and B's generations against the IMP level, and B's generations
    from scratch and with the evolved path (one value each)."""
    for r in range(rounds + 1):
        level = entry["levels"][f"r{r}"]
        writer.add_scalar("summary/sparsity", level["sparsity"], r)
        writer.add_scalar("summary/a_accuracy", level["a_accuracy"], r)
        writer.add_scalar("summary/b_generations", entry["b"][f"r{r}"]["generations"], r)
    writer.add_scalar("summary/evolved_a_accuracy", entry["levels"]["evolved"]["a_accuracy"], 0)
    for condition in ("scratch", "evolved"):
        writer.add_scalar(f"summary/{condition}_b_generations",
                          entry["b"][condition]["generations"], 0)  # fmt: skip


def mean_entry(summary: dict[str, Any]) -> dict[str, Any]:
    """The units' means in the shape of one unit's result (for :func:`log_unit`)."""
    conditions = summary["conditions"]
    levels = {name: {"sparsity": row["sparsity"]["mean"], "a_accuracy": row["a_accuracy"]["mean"]}
              for name, row in conditions.items() if name != "scratch"}  # fmt: skip
    b = {name: {"generations": row["b_generations"]["mean"]} for name, row in conditions.items()}
    return {"levels": levels, "b": b}
