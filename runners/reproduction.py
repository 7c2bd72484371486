"""Ablation of PathNet's binary-digit result (Fernando et al. 2017, arXiv:1701.08734, §3.1).

Runs ``pathevo binary_digits`` once per named variant — each variant a list of that runner's
flags — over one fixed list of task pairs (half of them sharing a digit), then writes
``ablation.json`` and ``ablation.md`` in ``--out``: per variant and condition the mean number of
generations to the threshold with its 95% Student-t interval, the median and the censored runs
(cap reached), and the paired PathNet-vs-control speed-ups over the same pairs, for all pairs
and for related and unrelated pairs separately.

Resumable: a variant whose run finished is read back, an interrupted one continues from its
checkpoint. Variants are run one after another; to use two cores run two processes with
different ``--variants`` and the same ``--out`` (each run is single-threaded).

Example:
    pathevo reproduction --variants landed evolve-finetune --out runs/reproduction
    pathevo reproduction --report-only --out runs/reproduction
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pathevo.runners import binary_digits
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import parse_config, run_cli

PAIRS = tuple(
    ":".join(f"digits/{task}" for task in pair.split(":"))
    for pair in (
        "1v3:1v2", "1v2:1v3", "4v5:6v7", "6v7:4v5", "3v5:3v8", "0v8:3v7",
        "0v6:6v8", "2v9:1v6", "4v9:7v9", "5v8:0v4", "2v7:2v5", "1v7:3v9",
    )
)  # fmt: skip
"""The ablation's pairs, related (A and B share a digit) and unrelated in turn; the first four
are jsikyoon/pathnet's 1vs3 <-> 1vs2 and 4vs5 <-> 6vs7."""

FAST = ("--threshold", "0.99", "--max-generations", "300")
"""The ablation's common setting: the quick threshold (the paper's 0.998 is its own line)."""

VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "landed": (
        "the landed setting: fixed-path fine-tuning control",
        (*FAST, "--finetune", "fixed"),
    ),
    "evolve-finetune": (
        "fine-tuning as evolution continued from A's population and parameters",
        FAST,
    ),
    "population-20": ("population 20 (what the paper's runs used, per jsikyoon)",
                      (*FAST, "--evo.population", "20")),
    "mean-last": ("last shared layer averages its modules", (*FAST, "--last-layer", "mean")),
    "noise-once": ("salt-and-pepper noise applied once to the data", (*FAST, "--noise-once")),
    "lr-0.01": ("SGD learning rate 0.01", (*FAST, "--train.learning-rate", "0.01")),
    "no-reinit": ("PathNet: modules off A's path keep A's values",
                  (*FAST, "--no-reinit-unfrozen")),
    "keep-population": ("PathNet: B starts from A's final population",
                        (*FAST, "--no-reset-population")),
    "copy-head": ("B's head starts as A's final head", (*FAST, "--copy-head")),
    "frozen-active": ("PathNet: A's frozen path always runs on B (jsikyoon)",
                      (*FAST, "--frozen-always-active")),
    "jsikyoon": ("jsikyoon/pathnet's setting: population 20, last layer mean, noise once, "
                 "A's path always active",
                 (*FAST, "--evo.population", "20", "--last-layer", "mean", "--noise-once",
                  "--frozen-always-active")),
    "paper": ("the runner's defaults: the paper's threshold 0.998 (cap 1000)", ()),
    "paper-population-20": ("the defaults with population 20", ("--evo.population", "20")),
    "paper-noise-once": ("the defaults with the noise applied once to the data",
                         ("--noise-once",)),
}  # fmt: skip
"""name -> (what it changes, binary_digits flags). Every variant but ``landed`` uses the
evolving fine-tuning control; each changes one setting from ``evolve-finetune``."""


@dataclass
class ReproductionConfig:
    """Which variants to run over which pairs, and where to put the runs and the tables."""

    variants: tuple[str, ...] = ()
    """Variants to run (default: all), by name: see VARIANTS in this file."""
    pairs: tuple[str, ...] = PAIRS
    """Task pairs 'A:B' every variant runs."""
    common: str = ""
    """Extra binary_digits flags for every variant, as one string: --common='--resolution 28'."""
    seed: int = 0
    """Seed of every variant's run (same pairs, same seeds: paired comparisons)."""
    out: str = "runs/reproduction"
    """Directory of the variants' runs, ablation.json and ablation.md."""
    report_only: bool = False
    """Only rebuild the tables from the finished runs in --out."""
    progress: bool = False
    """Show each run's progress display."""

    def __post_init__(self) -> None:
        unknown = [name for name in self.variants if name not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
        if not self.pairs:
            raise ValueError("give at least one task pair")


def variant_args(cfg: ReproductionConfig, name: str) -> list[str]:
    """The binary_digits command line of variant ``name`` (without --run-dir)."""
    return [*VARIANTS[name][1], *shlex.split(cfg.common), "--seed", str(cfg.seed), "--tasks",
            *cfg.pairs]  # fmt: skip


def command(cfg: ReproductionConfig, name: str) -> str:
    """The binary_digits command line a variant's run in --out was started with."""
    args = variant_args(cfg, name)
    config = Path(cfg.out) / name / rd.CONFIG
    if config.exists():  # its own pairs, which may be another --pairs than this call's
        tasks = json.loads(config.read_text())["tasks"]
        args = args[: args.index("--tasks") + 1] + list(tasks)
    return "pathevo binary_digits " + shlex.join(args)


def run_variant(cfg: ReproductionConfig, name: str) -> dict[str, Any]:
    """Run (or resume, or read back) one variant; its binary_digits summary."""
    run_path = Path(cfg.out) / name
    summary_path = run_path / rd.SUMMARY
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    if (run_path / rd.CONFIG).exists():
        resume = binary_digits.BinaryDigitsConfig(resume=str(run_path), progress=cfg.progress)
        return binary_digits.main(resume)
    args = [*variant_args(cfg, name), "--run-dir", str(run_path)]
    if not cfg.progress:
        args.append("--no-progress")
    return binary_digits.main(parse_config(binary_digits.BinaryDigitsConfig, "variant", args))


def main(cfg: ReproductionConfig) -> dict[str, Any]:
    """Run the chosen variants, then write the tables over every finished variant in --out."""
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    if not cfg.report_only:
        for name in cfg.variants or tuple(VARIANTS):  # a refused checkpoint: before any runs
            run_path = Path(cfg.out) / name
            if (run_path / rd.CONFIG).exists() and not (run_path / rd.SUMMARY).exists():
                binary_digits.load_state(run_path)
        for name in cfg.variants or tuple(VARIANTS):
            run_variant(cfg, name)
    rows = {}
    for name in VARIANTS:
        summary = binary_digits.completed_summary(Path(cfg.out) / name)
        if summary is not None:
            rows[name] = summary
    report = {
        name: {
            "changes": VARIANTS[name][0],
            "flags": shlex.join(VARIANTS[name][1]),
            "command": command(cfg, name),
            "statistics": summary["statistics"],
            "generations": {c: summary[f"{c}_generations"] for c in binary_digits.CONDITIONS},
            "pairs": summary["pairs"],
            **({"partial_of": summary["partial"]} if "partial" in summary else {}),
        }
        for name, summary in rows.items()
    }
    rd.write_json(Path(cfg.out) / "ablation.json", report)
    text = markdown(report)
    rd.atomic_write(Path(cfg.out) / "ablation.md", lambda handle: handle.write(text.encode()))
    print(text)
    return report


def speedup(paired: dict[str, Any]) -> str:
    """The geometric-mean speed-up with its 95% interval, and the pair count it won."""
    mean, half = paired["mean_log_ratio"], paired["log_ratio_ci95"]
    if half is None:
        return f"{math.exp(mean):.2f}×"
    return f"{math.exp(mean):.2f}× [{math.exp(mean - half):.2f}, {math.exp(mean + half):.2f}]"


def condition_cell(row: dict[str, Any]) -> str:
    half = "" if row["ci95"] is None else f" ± {row['ci95']:.0f}"
    censored = f", {row['censored']} cens." if row["censored"] else ""
    return f"{row['mean']:.0f}{half} (med {row['median']:g}{censored})"


def markdown(report: dict[str, Any]) -> str:
    """The ablation table: one line per variant."""
    lines = [
        "| variant | changes (binary_digits flags) | scratch | finetune | pathnet | "
        "PathNet vs scratch | PathNet vs finetune | vs scratch, related | vs scratch, unrelated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report.items():
        stats = row["statistics"]
        overall = stats["all"]
        cells = [
            f"`{name}`",
            row["changes"]
            + (
                f" ({len(row['pairs'])} of {row['partial_of']} pairs)"
                if "partial_of" in row
                else ""
            )
            + (f" `{row['flags']}`" if row["flags"] else ""),
            *(condition_cell(overall[c]) for c in binary_digits.CONDITIONS),
            speedup(overall["pathnet_vs_scratch"]),
            speedup(overall["pathnet_vs_finetune"]),
            *(
                speedup(stats[group]["pathnet_vs_scratch"]) if group in stats else "—"
                for group in ("related", "unrelated")
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Generations to the threshold on B: mean ± 95% CI over pairs (median, censored = cap "
        "reached). Speed-ups: geometric mean over pairs of control/PathNet generations with its "
        "95% CI (> 1: PathNet needs fewer)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main, ReproductionConfig, description=__doc__.split("\n\n")[0])
