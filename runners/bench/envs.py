"""Environment throughput: agent steps per second, one process, uniformly random actions.

Times every registered Labyrinth id (ViZDoom, Kempka et al. 2016, arXiv:1605.02097), Atari Pong
(ale-py) and MinAtar Breakout (Young & Tian 2019, arXiv:1903.03176), each built the way the
agents get it: ``envs.make_env`` when it exists, otherwise ``gymnasium.make`` (Labyrinth ids
through ``make_labyrinth_env``). Steps include the resets of episodes that end while timing.

Run ``pathevo bench envs --steps 2000 --json bench.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console
from rich.table import Table

from pathevo.envs.labyrinth import LABYRINTH_IDS, make_labyrinth_env
from pathevo.runners.plumbing.cli import run_cli

try:
    from pathevo.envs import make_env
except ImportError:  # envs.registry not there yet: build envs with gymnasium directly
    make_env = None

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


def make(env_id: str, seed: int) -> tuple[gym.Env, str]:
    """Build ``env_id`` seeded with ``seed``; also say which factory built it."""
    if make_env is not None:
        return make_env(env_id, seed), "make_env"
    if env_id in LABYRINTH_IDS:
        return make_labyrinth_env(env_id, seed), "make_labyrinth_env"
    if env_id.startswith("ALE/"):
        import ale_py

        gym.register_envs(ale_py)
    elif env_id.startswith("MinAtar/"):
        from minatar.gym import register_envs

        register_envs()
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env, "gymnasium.make"


def steps_per_second(env: gym.Env, steps: int) -> float:
    """Step ``env`` with random actions ``steps`` times; resets count in the time."""
    env.step(env.action_space.sample())
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically: a temporary file in the same directory, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(cfg: BenchConfig) -> dict[str, Any]:
    """Time each env; print a table; return (and optionally write) the results."""
    console = Console()
    results: dict[str, dict[str, Any]] = {}
    for env_id in cfg.env_ids:
        env, factory = make(env_id, cfg.seed)
        try:
            rate = steps_per_second(env, cfg.steps)
        finally:
            env.close()
        results[env_id] = {
            "steps_per_s": round(rate, 1),
            "factory": factory,
            "obs_shape": list(env.observation_space.shape),
        }
        console.print(f"{env_id}: {rate:,.0f} steps/s")

    table = Table(title=f"{cfg.steps} random-action steps per env, one process")
    for column in ("env id", "factory", "observation", "steps/s"):
        table.add_column(column, justify="right" if column == "steps/s" else "left")
    for env_id, r in results.items():
        shape = "×".join(map(str, r["obs_shape"]))
        table.add_row(env_id, r["factory"], shape, f"{r['steps_per_s']:,.0f}")
    console.print(table)

    summary = {"steps": cfg.steps, "seed": cfg.seed, "envs": results}
    if cfg.json is not None:
        write_json(cfg.json, summary)
    return summary


if __name__ == "__main__":
    run_cli(main, BenchConfig, description=__doc__)
