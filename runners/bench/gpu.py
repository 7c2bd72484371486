"""A GPU check in about ten minutes: the cuda tests, then library, MoE and learner-mode throughput
on the GPU against this machine's CPU.

PathNet's module library (Fernando et al. 2017, arXiv:1701.08734), a sparsely-gated MoE layer
(Shazeer et al. 2017, arXiv:1701.06538) and A3C's learner mode (GA3C, Babaeizadeh et al. 2017,
arXiv:1611.06256; agents/learner.py). Four parts, each reported even when an earlier one fails:

1. ``pytest -m cuda`` over the repository's tests (every test marked ``cuda``);
2. the library: forward+backward of one path and a no-grad ``forward_population`` of P paths
   (``runners/bench/library.py``'s timings), PathNet's MLP and Atari conv settings;
3. an MoE layer: forward+backward of a batch through 64 experts, top-2;
4. the learner mode: steady-state steps per second of ``pathevo a3c`` with A3C and PathNet-A3C
   on MinAtar and Pong, Hogwild workers vs the learner on the CPU vs the learner on the GPU.

Run ``pathevo bench gpu --json gpu.json`` on a machine with a GPU; ``--no-tests`` skips part 1.
Where there is no GPU it says so in one line.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch.utils import benchmark

from pathevo.agents.a3c import A3CConfig, learner_device
from pathevo.agents.pathnet_a3c import PathNetA3CConfig
from pathevo.agents.phase import env_spaces
from pathevo.modules.moe import MoEModuleLayer
from pathevo.runners.bench import a3c as a3c_bench
from pathevo.runners.bench import library as library_bench
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli

REPOSITORY = Path(__file__).resolve().parents[2]
"""The checkout this package runs from (an editable install): its ``tests/`` folder."""


@dataclass
class GPUCheckConfig:
    """What the GPU check runs."""

    device: str = "cuda"
    """The GPU to check: cuda or cuda:N."""
    tests: bool = True
    """Run ``pytest -m cuda`` first."""
    test_minutes: float = 5.0
    """Stop the tests after this many minutes."""
    min_run_time: float = 0.5
    """Seconds each library and MoE timing runs for."""
    env_ids: tuple[str, ...] = ("MinAtar/Breakout-v1", "ALE/Pong-v5")
    """Environments of the learner-mode timings (ALE/ ids only where ale-py is installed)."""
    steps: int = 20_000
    """Environment steps of each learner-mode timing on MinAtar (a quarter of it on Atari)."""
    workers: int = 0
    """Actor (and Hogwild worker) processes; 0: half the CPUs, at least 2 and at most 8."""
    minutes: float = 10.0
    """Skip the learner-mode timings left once the whole check has run this long."""
    json: Path | None = None
    """Also write the results to this JSON file."""

    def __post_init__(self) -> None:
        if min(self.test_minutes, self.min_run_time, self.steps, self.minutes) <= 0:
            raise ValueError("test_minutes, min_run_time, steps and minutes must be positive")
        if self.workers < 0:
            raise ValueError(f"workers must be non-negative, got {self.workers}")

    @property
    def actors(self) -> int:
        return self.workers or min(8, max(2, (os.cpu_count() or 2) // 2))


def run_cuda_tests(cfg: GPUCheckConfig) -> dict[str, Any]:
    """``pytest -m cuda`` in the repository: its exit code and last line."""
    tests = REPOSITORY / "tests"
    if not tests.is_dir():
        return {"returncode": None, "summary": f"no tests folder at {tests} (not a checkout)"}
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
               str(tests)]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True,
                              timeout=cfg.test_minutes * 60)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"returncode": None, "summary": f"stopped after {cfg.test_minutes} minutes"}
    lines = done.stdout.strip().splitlines()
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    return {"returncode": done.returncode, "summary": lines[-1] if lines else done.stderr[-500:],
            "failures": failures}  # fmt: skip


def time_library(
    min_run_time: float, device: str, settings: tuple[str, ...] = ("mlp-paper", "atari-conv")
) -> dict[str, dict[str, float]]:
    """Milliseconds of one path's forward+backward (M = 10) and of P = 64 paths' no-grad
    population forward on ``device``, per PathNet setting of ``runners/bench/library.py``
    (each timed ``min_run_time`` s)."""
    bench = library_bench.BenchLibraryConfig(
        library_sizes=(10,), min_run_time=min_run_time, device=device,
        threads=torch.get_num_threads(),
    )  # fmt: skip
    figures = {}
    for name in settings:
        setting = library_bench.SETTINGS[name]
        path = library_bench.time_path_vs_dense(setting, bench)[10]["path_ms"]
        population = library_bench.time_population(setting, bench)["population_ms"]
        figures[name] = {"path_ms": path, "population_ms": population}
    return figures


def time_moe(min_run_time: float, device: str) -> dict[str, float]:
    """Milliseconds of a forward+backward of 2048 tokens through an MoE layer of 64 experts
    (256 -> 512 -> 256, top-2) on ``device`` (timed ``min_run_time`` s)."""
    torch.manual_seed(0)
    layer = MoEModuleLayer(64, 256, 512, 256, k=2).to(device)
    x = torch.randn(2048, 256, device=device)
    ids = list(range(64))
    stmt = "layer(x, ids).sum().backward()"
    timer = benchmark.Timer(stmt=stmt, globals={"layer": layer, "x": x, "ids": ids},
                            num_threads=torch.get_num_threads())  # fmt: skip
    seconds = timer.blocked_autorange(min_run_time=min_run_time).median
    return {"forward_backward_ms": seconds * 1e3}


def learner_settings(env_id: str, cfg: GPUCheckConfig) -> a3c_bench.BenchA3CConfig:
    """The a3c bench's settings for ``env_id``: MinAtar's learning-test library, or the paper's
    Atari one (steps: a quarter on Atari)."""
    if env_id.startswith("ALE/"):
        return a3c_bench.BenchA3CConfig(
            env_id=env_id, workers=cfg.actors, steps=max(cfg.steps // 4, 1000), modules=(10,),
            a3c=A3CConfig(t_max=20, envs_per_worker=16, recompute=False, log_every=1),
        )  # fmt: skip
    return a3c_bench.BenchA3CConfig(
        env_id=env_id, workers=cfg.actors, steps=cfg.steps, modules=(6,),
        a3c=A3CConfig(t_max=10, envs_per_worker=16, log_every=1),
        pathnet=PathNetA3CConfig(layers=3, active=2, units=32),
    )  # fmt: skip


def time_learner(cfg: GPUCheckConfig, started: float, console: Console) -> list[dict[str, Any]]:
    """Steps per second of A3C and PathNet-A3C: Hogwild, the learner on the CPU, the learner
    on the GPU, per environment (the float32 torso everywhere)."""
    rows = []
    for env_id in cfg.env_ids:
        try:
            bench = learner_settings(env_id, cfg)
            env_spaces(env_id, 0)
        except Exception as error:  # ale-py or MinAtar missing: say so, go on
            rows.append({"env_id": env_id, "error": f"{type(error).__name__}: {error}"})
            continue
        for agent in ("a3c", "pathnet"):
            for mode, device in (("hogwild", "cpu"), ("learner", "cpu"), ("learner", cfg.device)):
                row = {"env_id": env_id, "agent": agent, "mode": mode, "device": device}
                if time.monotonic() - started > cfg.minutes * 60:
                    rows.append({**row, "error": f"skipped: past {cfg.minutes} minutes"})
                    continue
                console.print(f"{agent} on {env_id}, {mode} on {device} ...")
                what = a3c_bench.Measurement(agent, bench.modules[0], "float32", mode)
                setting = dataclasses.replace(bench, device=device)
                row.update(attempt(lambda s=setting, w=what: {
                    "steps_per_second": a3c_bench.agent_steps_per_second(s, w)}))  # fmt: skip
                rows.append(row)
    return rows


def attempt(part: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``part()``, or its error in one line: a part that fails must not hide the others."""
    try:
        return part()
    except Exception as error:
        lines = str(error).strip().splitlines() or [""]
        return {"error": f"{type(error).__name__}: {lines[-1]}"}


def main(cfg: GPUCheckConfig) -> dict[str, Any]:
    """Run the four parts, print their tables, return (and optionally write) the results."""
    if learner_device(cfg.device).type != "cuda":  # no CUDA here: a one-line error
        raise ValueError(f"the GPU check needs a CUDA device, not {cfg.device!r}")
    console, started = Console(), time.monotonic()
    results: dict[str, Any] = {
        "device": cfg.device, "gpu": torch.cuda.get_device_name(learner_device(cfg.device)),
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
    }  # fmt: skip
    if cfg.tests:
        console.print("pytest -m cuda ...")
        results["tests"] = run_cuda_tests(cfg)
        console.print(f"cuda tests: {results['tests']['summary']}")
        for failure in results["tests"].get("failures", []):
            console.print(f"  {failure}")
    console.print("library and MoE timings ...")
    devices = ("cpu", cfg.device)
    results["library"] = {
        d: attempt(lambda d=d: time_library(cfg.min_run_time, d)) for d in devices
    }
    results["moe"] = {d: attempt(lambda d=d: time_moe(cfg.min_run_time, d)) for d in devices}
    table = Table(title=f"the library and an MoE layer: cpu vs {results['gpu']}")
    for column in ("what", "cpu ms", "gpu ms", "speed-up"):
        table.add_column(column, justify="right")
    cpu, gpu = results["library"]["cpu"], results["library"][cfg.device]
    for name in ("mlp-paper", "atari-conv"):
        for key in ("path_ms", "population_ms"):
            if name in cpu and name in gpu:
                on_cpu, on_gpu = cpu[name][key], gpu[name][key]
                table.add_row(f"{name} {key[:-3]}", f"{on_cpu:.3f}", f"{on_gpu:.3f}",
                              f"{on_cpu / on_gpu:.1f}×")  # fmt: skip
    moe_cpu, moe_gpu = results["moe"]["cpu"], results["moe"][cfg.device]
    if "forward_backward_ms" in moe_cpu and "forward_backward_ms" in moe_gpu:
        a, b = moe_cpu["forward_backward_ms"], moe_gpu["forward_backward_ms"]
        table.add_row("MoE 64 experts fwd+bwd", f"{a:.2f}", f"{b:.2f}", f"{a / b:.1f}×")
    console.print(table)
    for part in ("library", "moe"):
        for device, figures in results[part].items():
            if "error" in figures:
                console.print(f"{part} on {device}: {figures['error']}")
    results["learner"] = time_learner(cfg, started, console)
    table = Table(title=f"learner mode, {cfg.actors} actors / workers: steps per second")
    for column in ("env", "agent", "mode", "device", "steps/s"):
        table.add_column(column, justify="right")
    for row in results["learner"]:
        rate = f"{row['steps_per_second']:,.0f}" if "steps_per_second" in row else row["error"]
        table.add_row(row["env_id"], row.get("agent", "-"), row.get("mode", "-"),
                      row.get("device", "-"), rate)  # fmt: skip
    console.print(table)
    results["seconds"] = time.monotonic() - started
    console.print(f"the check took {results['seconds'] / 60:.1f} minutes")
    if cfg.json is not None:
        rd.write_json(cfg.json, results)
    return results


if __name__ == "__main__":
    run_cli(main, GPUCheckConfig, description=__doc__.split("\n\n")[0])
