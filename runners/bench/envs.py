"""Environment throughput: agent steps per second, one process, uniformly random actions.

Times every registered Labyrinth id (ViZDoom, Kempka et al. 2016, arXiv:1605.02097), Atari Pong
(ale-py) and MinAtar Breakout (Young & Tian 2019, arXiv:1903.03176), each built the way the
agents get it, by :func:`pathevo.envs.make_env`. Steps include the resets of episodes that end
while timing.

Run ``pathevo bench envs --steps 2000 --json bench.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console
from rich.table import Table

from pathevo.envs import make_env
from pathevo.envs.labyrinth import LABYRINTH_IDS
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli

DEFAULT_IDS = (*LABYRINTH_IDS, "ALE/Pong-v5", "MinAtar/Breakout-v1")


@dataclass
class BenchConfig:
    """Time ``steps`` random-action steps of each env in this process."""

    steps: int = 2000
    """Agent steps timed per env, after one untimed step; episodes restart as they end."""
    seed: int = 0
    """Seed of each env and of its random actions."""
    env_ids: tuple[str, ...] = DEFAULT_IDS
    """Ids to time."""
    json: Path | None = None
    """Also write the results to this JSON file."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not self.env_ids:
            raise ValueError("env_ids must name at least one environment")


def steps_per_second(env: gym.Env, steps: int) -> float:
    """Step ``env`` with random actions ``steps`` times; resets count in the time."""
    env.step(env.action_space.sample())
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main(cfg: BenchConfig) -> dict[str, Any]:
    """Time each env; print a table; return (and optionally write) the results."""
    console = Console()
    results: dict[str, dict[str, Any]] = {}
    for env_id in cfg.env_ids:
        env = make_env(env_id, cfg.seed)
        try:
            rate = steps_per_second(env, cfg.steps)
        finally:
            env.close()
        results[env_id] = {
            "steps_per_s": round(rate, 1),
            "obs_shape": list(env.observation_space.shape),
        }
        console.print(f"{env_id}: {rate:,.0f} steps/s")

    table = Table(title=f"{cfg.steps} random-action steps per env, one process")
    for column in ("env id", "observation", "steps/s"):
        table.add_column(column, justify="right" if column == "steps/s" else "left")
    for env_id, r in results.items():
        shape = "×".join(map(str, r["obs_shape"]))
        table.add_row(env_id, shape, f"{r['steps_per_s']:,.0f}")
    console.print(table)

    summary = {"steps": cfg.steps, "seed": cfg.seed, "envs": results}
    if cfg.json is not None:
        rd.write_json(cfg.json, summary)
    return summary


if __name__ == "__main__":
    run_cli(main, BenchConfig, description=__doc__)
