"""Throughput of A3C and PathNet-A3C workers against the raw environment limit, in one run.

Mnih et al. 2016, arXiv:1602.01783 (A3C); Fernando et al. 2017, arXiv:1701.08734 (PathNet).
Measurements on the same machine, one after the other:

* ``raw``: the environments alone, stepping uniformly random actions. ALE ids: ale-py's C++
  vector env with the same preprocessing as ``pathevo.envs.make_env`` (84×84 gray, frame skip 4
  with max-pooling, 4 stacked frames, up to 30 no-ops, sticky actions 0.25), W·E games and as
  many threads as workers (each worker steps its own vector env of the same kind, E games on one
  thread); with ``--envpool`` also EnvPool's Atari with the same settings (if installed),
  reported beside it. Other ids (MinAtar, CartPole): W processes, each stepping the batch of E
  environments a worker steps (``make_env_batch``);
* ``a3c``: ``runners/a3c.py`` with the standard network, W workers;
* ``pathnet``: ``pathevo a3c --agent pathnet`` (``--pathnet.*``; the paper's Atari library by
  default), W workers, for each library size M in ``--modules``: the cost of a step must not
  grow with M;
* ``sb3`` (``--sb3``, ALE ids, if stable-baselines3 is installed): Stable-Baselines3's A2C with
  its Atari setup (``make_atari_env``, 4 stacked frames, ``CnnPolicy``, RL Zoo's 16 envs and
  n_steps 5), its envs in-process with 1 and with W torch threads and in W subprocesses; the
  fastest of the three counts.

Each agent is timed in every torso precision of ``--precisions`` (float32, and bfloat16 mixed
precision, which halves the memory traffic of the convolutions and uses the CPU's bfloat16
instructions where it has them); the first one listed gives the top-level JSON figures. And in
every mode of ``--modes``, one right after the other: ``hogwild`` (W worker processes that act
and learn) and ``learner`` (W actor processes that only step their envs around one batching
learner on ``--device``: GA3C, Babaeizadeh et al. 2017, arXiv:1611.06256; agents/learner.py);
the first mode listed gives the top-level figures, every mode's are under ``by_mode``, and
``learner_vs_hogwild`` divides the two.

Agent throughput is steady state: environment steps from the moment every worker has sent its
first update to the last update, over that wall time (process and environment start-up and
shut-down excluded). SB3's is its own steps over the wall time of ``learn`` after a warm-up.
One step is one action (4 frames on Atari).
Run ``pathevo bench a3c --workers 2 --json bench.json``; MinAtar with the settings of its
learning test: ``pathevo bench a3c --env-id MinAtar/Breakout-v1 --a3c.envs-per-worker 16
--a3c.t-max 10 --a3c.recompute --modules 6 --pathnet.layers 3 --pathnet.active 2
--pathnet.units 32``; the learner on a GPU beside Hogwild: ``--device cuda``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from pathevo.agents.a3c import (
    MODES,
    PRECISIONS,
    A3CConfig,
    Mode,
    Precision,
    learner_device,
    resolve_precision,
)
from pathevo.agents.env_batch import make_env_batch
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.phase import env_spaces
from pathevo.agents.processes import torch_threads
from pathevo.envs.atari import (
    FRAME_SKIP,
    FRAME_STACK,
    NOOP_MAX,
    REPEAT_ACTION_PROBABILITY,
    SCREEN_SIZE,
    make_atari_vector_env,
    rom_name,
)
from pathevo.runners import a3c as a3c_runner
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli


@dataclass
class BenchA3CConfig:
    """Steps per second of PathNet-A3C and A3C workers vs. the raw vector environment."""

    env_id: str = "ALE/Pong-v5"
    """Environment id: ALE ids' raw limit is ale-py's vector env, other ids' W processes of
    worker env batches."""
    workers: int = 2
    """Worker processes of the agents; threads of the raw vector env."""
    steps: int = 60_000
    """Environment steps per agent measurement (summed over workers; about 20 s each)."""
    raw_seconds: float = 10.0
    """How long to step the raw vector env."""
    a3c: A3CConfig = field(
        default_factory=lambda: A3CConfig(
            t_max=20, envs_per_worker=32, recompute=False, log_every=1
        )
    )
    """Agent settings: a worker steps envs-per-worker games (ale-py's vector env on its own
    thread), batches their inference and keeps the acting pass's graph for the loss."""
    modules: tuple[int, ...] = (10, 40)
    """Library sizes M to time PathNet-A3C with (the paper's is 10)."""
    pathnet: PathNetA3CConfig = field(default_factory=PathNetA3CConfig)
    """PathNet-A3C's library and tournament (its M is each of ``modules`` in turn)."""
    precisions: tuple[Precision, ...] = ("float32", "bfloat16")
    """Torso precisions to time every agent in; the default configuration's (``auto`` resolved
    for the env on this machine) gives the top-level JSON figures, if it is among them, else
    the first."""
    modes: tuple[Mode, ...] = ("hogwild", "learner")
    """A3C modes to time every agent in, one right after the other: Hogwild workers, and CPU
    actors around one learner (``--a3c.mode learner``); the first gives the top-level figures."""
    device: str = "cpu"
    """Where the learner mode's learner runs: cpu, cuda, cuda:N or auto."""
    envpool: bool = False
    """ALE ids: also time EnvPool's Atari (same preprocessing, W threads) as a raw limit."""
    sb3: bool = False
    """ALE ids: also time Stable-Baselines3's A2C (its Atari setup) as a peer."""
    sb3_steps: int = 20_000
    """Environment steps SB3's A2C is timed for (after a warm-up of a tenth of them)."""
    seed: int = 0
    """Seed of the envs and agents."""
    json: Path | None = None
    """Also write the results to this JSON file."""

    def __post_init__(self) -> None:
        if (self.envpool or self.sb3) and not self.is_atari:
            raise ValueError(
                f"--envpool and --sb3 time Atari games (ALE/<Game>-v5), not {self.env_id}"
            )
        if self.workers <= 0 or self.steps <= 0 or self.raw_seconds <= 0:
            raise ValueError("workers, steps and raw_seconds must be positive")
        if not self.modules or min(self.modules) < 4:
            raise ValueError("modules needs library sizes M >= 4 (N = 4 modules are active)")
        self.modules = tuple(sorted(set(self.modules)))
        if self.a3c.precision != "auto":
            raise ValueError("choose the torso precisions with --precisions, not --a3c.precision")
        if self.a3c.mode != "hogwild" or self.a3c.device != "cpu":
            raise ValueError("choose the modes with --modes and the learner's with --device")
        if not self.modes or not set(self.modes) <= set(MODES):
            raise ValueError(f"modes must be some of {MODES}, got {self.modes}")
        learner_device(self.device)  # CUDA asked for and absent: one line
        if not self.precisions or not set(self.precisions) <= set(PRECISIONS):
            raise ValueError(f"precisions must be some of {PRECISIONS}, got {self.precisions}")
        if self.pathnet.active > min(self.modules):
            raise ValueError(f"pathnet.active={self.pathnet.active} exceeds the smallest M")
        if self.sb3_steps <= 0:
            raise ValueError("sb3_steps must be positive")

    @property
    def is_atari(self) -> bool:
        return self.env_id.startswith("ALE/")


def random_steps_per_second(
    step: Callable[[np.ndarray], object],
    actions: int,
    size: int,
    seconds: float,
    rng: np.random.Generator,
) -> float:
    """Steps per second of ``step``-ping ``size`` envs with uniformly random actions of
    ``actions`` kinds for ``seconds``: every raw limit's loop (ale-py, EnvPool, worker batches)."""
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(rng.integers(0, actions, size))
        steps += size
    return steps / (time.perf_counter() - start)


def raw_steps_per_second(cfg: BenchA3CConfig) -> float:
    """Random-action steps per second of the environments alone: ale-py's vector env (W
    threads, W·E games) for ALE ids, else W processes each stepping a worker's batch."""
    if not cfg.is_atari:
        return batch_processes_steps_per_second(cfg)
    num_envs = cfg.workers * cfg.a3c.envs_per_worker
    env = make_atari_vector_env(cfg.env_id, num_envs, num_threads=cfg.workers)
    rng = np.random.default_rng(cfg.seed)
    try:
        env.reset(seed=cfg.seed)
        return random_steps_per_second(
            env.step, env.single_action_space.n, num_envs, cfg.raw_seconds, rng
        )
    finally:
        env.close()


def batch_processes_steps_per_second(cfg: BenchA3CConfig) -> float:
    """W spawned processes, each stepping the batch of E envs a worker steps, summed."""
    seeds = [
        [cfg.seed + rank + j * cfg.workers for j in range(cfg.a3c.envs_per_worker)]
        for rank in range(cfg.workers)
    ]  # the workers' env seeds
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(cfg.workers, mp_context=context) as pool:
        jobs = [pool.submit(_step_batch, cfg.env_id, row, cfg.raw_seconds) for row in seeds]
        return sum(job.result() for job in jobs)


def _step_batch(env_id: str, seeds: list[int], seconds: float) -> float:
    """Random-action steps per second of one worker's env batch (run in a pool process)."""
    torch.set_num_threads(1)
    envs = make_env_batch(env_id, seeds)
    actions = env_spaces(env_id, seeds[0])[1]
    rng = np.random.default_rng(seeds[0])
    try:
        envs.step(rng.integers(0, actions, len(envs)))  # warm
        return random_steps_per_second(envs.step, actions, len(envs), seconds, rng)
    finally:
        envs.close()


def envpool_steps_per_second(cfg: BenchA3CConfig) -> float | None:
    """Random-action steps per second of EnvPool's Atari with ale-py's vector env's settings
    (W threads, W·E games, synchronous), or None if EnvPool is not installed."""
    if importlib.util.find_spec("envpool") is None:
        return None
    import envpool

    num_envs = cfg.workers * cfg.a3c.envs_per_worker
    game = cfg.env_id.removeprefix("ALE/")
    env = envpool.make(
        game, env_type="gymnasium", num_envs=num_envs, batch_size=num_envs,
        num_threads=cfg.workers, seed=cfg.seed, episodic_life=False, reward_clip=False,
        stack_num=FRAME_STACK, img_height=SCREEN_SIZE, img_width=SCREEN_SIZE, gray_scale=True,
        frame_skip=FRAME_SKIP, noop_max=NOOP_MAX, use_fire_reset=False,
        repeat_action_probability=REPEAT_ACTION_PROBABILITY,
        max_episode_steps=108_000 // FRAME_SKIP,
    )  # fmt: skip
    rng = np.random.default_rng(cfg.seed)
    try:
        env.reset()
        return random_steps_per_second(env.step, env.action_space.n, num_envs, cfg.raw_seconds, rng)
    finally:
        env.close()


def sb3_steps_per_second(cfg: BenchA3CConfig) -> dict[str, float] | None:
    """Stable-Baselines3 A2C's steps per second with its Atari setup in three settings: its envs
    in this process with 1 and with W torch threads, and in W subprocesses with 1 thread; None
    if SB3 is not installed."""
    if importlib.util.find_spec("stable_baselines3") is None:
        return None
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

    rom_name(cfg.env_id)  # a one-line error for an unknown game
    settings = [
        ("envs in-process, 1 thread", DummyVecEnv, 1),
        (f"envs in-process, {cfg.workers} threads", DummyVecEnv, cfg.workers),
        (f"envs in {cfg.workers} subprocesses, 1 thread", SubprocVecEnv, 1),
    ]
    rates = {}
    for name, vec_env_cls, threads in settings:
        if name in rates:  # one worker: the first two settings are the same
            continue
        kwargs = {"start_method": "spawn"} if vec_env_cls is SubprocVecEnv else None
        env = VecFrameStack(
            make_atari_env(cfg.env_id, n_envs=16, seed=cfg.seed, vec_env_cls=vec_env_cls,
                           vec_env_kwargs=kwargs),
            n_stack=FRAME_STACK,
        )  # fmt: skip
        try:
            with torch_threads(threads):
                model = A2C("CnnPolicy", env, n_steps=5, seed=cfg.seed, device="cpu", verbose=0)
                model.learn(cfg.sb3_steps // 10)  # warm-up
                start = time.perf_counter()
                model.learn(cfg.sb3_steps, reset_num_timesteps=False)
                rates[name] = cfg.sb3_steps / (time.perf_counter() - start)
        finally:
            env.close()
    return rates


@dataclass(frozen=True)
class Measurement:
    """One agent setting to time."""

    agent: str
    modules: int
    precision: Precision
    mode: Mode = "hogwild"

    @property
    def label(self) -> str:
        return "A3C" if self.agent == "a3c" else f"PathNet-A3C, M = {self.modules}"


def agent_steps_per_second(cfg: BenchA3CConfig, what: Measurement) -> float:
    """Steady-state steps per second of ``runners/a3c.py`` with this agent (a throwaway run)."""
    device = cfg.device if what.mode == "learner" else "cpu"
    with tempfile.TemporaryDirectory() as run_dir:
        run = a3c_runner.A3CRunConfig(
            env_id=cfg.env_id, agent=what.agent, workers=cfg.workers, steps=cfg.steps,
            seed=cfg.seed, a3c=dataclasses.replace(cfg.a3c, precision=what.precision,
                                                   mode=what.mode, device=device),
            pathnet=dataclasses.replace(cfg.pathnet, modules=what.modules),
            run_dir=str(Path(run_dir) / "run"), checkpoint_every=10**12, progress=False,
        )  # fmt: skip
        return a3c_runner.main(run)["steps_per_second"]


def main(cfg: BenchA3CConfig) -> dict[str, Any]:
    """Measure, print a table, return (and optionally write) the results.

    The raw limit is measured before every agent and once at the end; each agent is compared
    with the mean of the two raw measurements around it, so that a change in the machine's load
    during the run (other processes) biases no ratio in particular.
    """
    console = Console()
    load_before = os.getloadavg()
    measurements = [
        Measurement(agent, modules, precision, mode)
        for agent, modules in [("a3c", cfg.modules[0])] + [("pathnet", m) for m in cfg.modules]
        for precision in cfg.precisions
        for mode in cfg.modes
    ]
    raws, rates = [], []
    for what in measurements:
        console.print(f"raw vector env, {cfg.workers} threads ...")
        raws.append(raw_steps_per_second(cfg))
        console.print(f"{what.label} ({what.precision}, {what.mode}), {cfg.workers} workers ...")
        rates.append(agent_steps_per_second(cfg, what))
    raws.append(raw_steps_per_second(cfg))
    arounds = [(raws[i] + raws[i + 1]) / 2 for i in range(len(rates))]
    envpool = None
    if cfg.envpool:
        console.print(f"EnvPool, {cfg.workers} threads ...")
        envpool = envpool_steps_per_second(cfg)
        if envpool is None:
            console.print("EnvPool is not installed (pip install envpool): skipped")
        else:
            raws.append(raw_steps_per_second(cfg))  # ale-py right after it, for the ratio
    sb3 = None
    if cfg.sb3:
        console.print("Stable-Baselines3 A2C ...")
        sb3 = sb3_steps_per_second(cfg)
        if sb3 is None:
            console.print("stable-baselines3 is not installed (pip install stable-baselines3): "
                          "skipped")  # fmt: skip
    fractions = [rate / around for rate, around in zip(rates, arounds, strict=True)]
    by_mode: dict[str, dict[str, dict[str, Any]]] = {
        mode: {
            precision: {"a3c_steps_per_second": 0.0, "pathnet_steps_per_second": {},
                        "a3c_fraction_of_raw": 0.0, "pathnet_fractions_of_raw": {}}
            for precision in cfg.precisions
        }
        for mode in cfg.modes
    }  # fmt: skip
    for what, rate, fraction in zip(measurements, rates, fractions, strict=True):
        figures = by_mode[what.mode][what.precision]
        if what.agent == "a3c":
            figures["a3c_steps_per_second"], figures["a3c_fraction_of_raw"] = rate, fraction
        else:
            figures["pathnet_steps_per_second"][str(what.modules)] = rate
            figures["pathnet_fractions_of_raw"][str(what.modules)] = fraction
    smallest, largest = str(cfg.modules[0]), str(cfg.modules[-1])
    for by_precision in by_mode.values():
        for figures in by_precision.values():
            pathnet = figures["pathnet_steps_per_second"]
            figures["pathnet_fraction_of_raw"] = figures["pathnet_fractions_of_raw"][smallest]
            figures["pathnet_cost_ratio_largest_vs_smallest_m"] = (
                pathnet[smallest] / pathnet[largest]
            )
    default = resolve_precision("auto", env_spaces(cfg.env_id, cfg.seed)[0])
    headline = default if default in cfg.precisions else cfg.precisions[0]
    by_precision = by_mode[cfg.modes[0]]
    results = {
        "env_id": cfg.env_id,
        "workers": cfg.workers,
        "envs_per_worker": cfg.a3c.envs_per_worker,
        "t_max": cfg.a3c.t_max,
        "precision": headline,
        "mode": cfg.modes[0],
        "learner_device": str(learner_device(cfg.device)),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "load_average": {"start": load_before, "end": os.getloadavg()},
        "raw_steps_per_second": sum(raws) / len(raws),
        "raw_measurements": raws,
        **by_precision[headline],
        "by_precision": by_precision,
        "by_mode": by_mode,
        "config": dataclasses.asdict(cfg),
    }
    if {"hogwild", "learner"} <= set(cfg.modes):
        learner, hogwild = by_mode["learner"][headline], by_mode["hogwild"][headline]
        results["learner_vs_hogwild"] = {
            "a3c": learner["a3c_steps_per_second"] / hogwild["a3c_steps_per_second"],
            "pathnet": {m: rate / hogwild["pathnet_steps_per_second"][m]
                        for m, rate in learner["pathnet_steps_per_second"].items()},
        }  # fmt: skip
    if envpool is not None:
        results["envpool_steps_per_second"] = envpool
        results["envpool_vs_ale_py"] = envpool / ((raws[-2] + raws[-1]) / 2)
    if sb3 is not None:
        best = max(sb3.values())
        results["sb3_a2c_steps_per_second"] = sb3
        results["pathnet_vs_sb3_a2c"] = results["pathnet_steps_per_second"][smallest] / best
        results["a3c_vs_sb3_a2c"] = results["a3c_steps_per_second"] / best
    table = Table(title=f"{cfg.env_id}, {cfg.workers} workers / threads: steps per second")
    for column in ("what", "torso", "mode", "steps/s", "raw around it", "fraction of raw"):
        table.add_column(column, justify="right")
    for what, rate, around, fraction in zip(measurements, rates, arounds, fractions, strict=True):
        mode = what.mode if what.mode == "hogwild" else f"learner ({results['learner_device']})"
        row = [what.label, what.precision, mode, f"{rate:,.0f}", f"{around:,.0f}",
               f"{fraction:.2f}"]  # fmt: skip
        table.add_row(*row)
    if envpool is not None:
        table.add_row("raw, EnvPool", "-", "-", f"{envpool:,.0f}",
                      f"{(raws[-2] + raws[-1]) / 2:,.0f}",
                      f"{results['envpool_vs_ale_py']:.2f} × ale-py")  # fmt: skip
    for name, rate in (sb3 or {}).items():
        table.add_row(f"SB3 A2C, {name}", "float32", "-", f"{rate:,.0f}", "-", "-")
    console.print(table)
    console.print(f"load average (1 min): {load_before[0]:.1f} at the start, "
                  f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs")  # fmt: skip
    if sb3 is not None:
        console.print(f"PathNet-A3C (M = {smallest}, {headline}) / SB3 A2C's best: "
                      f"{results['pathnet_vs_sb3_a2c']:.2f}×; A3C / SB3 A2C: "
                      f"{results['a3c_vs_sb3_a2c']:.2f}×")  # fmt: skip
    if cfg.json is not None:
        rd.write_json(cfg.json, results)
    return results


if __name__ == "__main__":
    run_cli(main, BenchA3CConfig, description=__doc__.split("\n\n")[0])
