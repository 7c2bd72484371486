"""Merge lottery runs of one setting into one summary: seeds run apart, intervals over them all.

Lottery runs with the same settings but different seeds (``pathevo lottery --seed 0 --repeats
4``, ``--seed 4 --repeats 4``, … run side by side, one per core or machine) are one experiment;
this recipe reads their finished trainings and writes the summary a single run over all their
seeds would have written — summary.json, lottery.png (early_stopping.png for image tasks),
summary.md — to ``--out``. Runs whose settings differ in anything but the seeds, or that share
a seed, are refused in one line.

``pathevo lottery_merge --runs runs/a runs/b --out runs/merged``
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from pathevo.runners.lottery import LotteryConfig, print_table, summarise, write_results
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli

PER_RUN = ("seed", "repeats", "run_dir", "resume", "progress", "return_floor")
"""Settings that may differ between the merged runs (the floor only shapes the summary: the
first run's, or ``--return-floor``)."""


@dataclass
class LotteryMergeConfig:
    """Which finished lottery runs to merge, and where to write the merged summary."""

    runs: tuple[str, ...] = ()
    """Run directories of finished lottery runs (each with its summary.json)."""
    out: str = "runs/lottery-merged"
    """Directory of the merged summary (created; an existing summary there is replaced; not one
    of --runs)."""
    return_floor: float | None = None
    """The environment's lowest return for the 95%-of-dense criterion (None: the first run's)."""

    def __post_init__(self) -> None:
        if len(self.runs) < 2:
            raise ValueError("lottery_merge needs --runs with two or more run directories")
        if any(Path(run).resolve() == Path(self.out).resolve() for run in self.runs):
            raise ValueError(f"--out {self.out} is one of --runs: its summary would be replaced")


def read_run(path: Path) -> tuple[LotteryConfig, dict[int, dict[str, Any]]]:
    """A finished run's config and its trainings by seed (seed -> training name -> result)."""
    if not (path / rd.SUMMARY).is_file():
        raise ValueError(f"{path} holds no finished lottery run (no {rd.SUMMARY})")
    cfg = rd.load_config(path, LotteryConfig)
    try:
        summary = json.loads((path / rd.SUMMARY).read_text())
        trainings = summary["trainings"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} holds no finished lottery run ({error})") from None
    results: dict[int, dict[str, Any]] = {}
    for key, training in trainings.items():
        seed, _, name = key.partition("/")
        results.setdefault(int(seed.removeprefix("s")), {})[name] = training
    return cfg, results


def main(cfg: LotteryMergeConfig) -> dict[str, Any]:
    """Merge ``cfg.runs`` and write the merged outputs to ``cfg.out``; return the summary."""
    runs = [(run, *read_run(Path(run))) for run in cfg.runs]
    first = runs[0][1]
    settings = {k: v for k, v in dataclasses.asdict(first).items() if k not in PER_RUN}
    merged: dict[int, dict[str, Any]] = {}
    for run, run_cfg, results in runs:
        other = {k: v for k, v in dataclasses.asdict(run_cfg).items() if k not in PER_RUN}
        if other != settings:
            differ = sorted(k for k in other if other[k] != settings.get(k))
            raise ValueError(f"{run} was run with other settings ({', '.join(differ)})")
        shared = sorted(set(merged) & set(results))
        if shared:
            raise ValueError(f"{run} repeats seed(s) {shared} of another run")
        merged.update(results)
    seeds = sorted(merged)
    floor = first.return_floor if cfg.return_floor is None else cfg.return_floor
    whole = dataclasses.replace(first, seed=seeds[0], repeats=len(seeds), run_dir=cfg.out,
                                resume=None, return_floor=floor)  # fmt: skip
    summary = summarise(whole, merged)
    summary["merged_from"] = list(cfg.runs)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_results(out, summary)
    print_table(Console(), summary, out)
    return summary


if __name__ == "__main__":
    run_cli(main, LotteryMergeConfig, __doc__.split("\n\n")[0])
