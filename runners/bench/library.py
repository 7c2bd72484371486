"""Benchmark of the module library: path cost against a dense network, population against a loop.

Two questions, each answered by timings measured side by side in one run:

1. Does a path of N modules per layer cost about what a dense network of the same active size
   costs, whatever the library size M? For M in ``--library-sizes`` we time forward+backward of
   one path and of the dense baseline: per layer one ``nn.Linear(in, N*h)`` (or one conv with
   N*C_out channels) + ReLU whose outputs are summed in groups of h — the same FLOPs and the
   same parameters as the path. Goal: ratio <= 1.2 and flat in M.
2. How much faster is ``forward_population`` for P paths than a Python loop over them?

Timings are medians of ``torch.utils.benchmark`` (one thread; it synchronises CUDA).
``--device cuda`` times the same on a GPU (a one-line error where there is none).
``--json PATH`` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils import benchmark

from pathevo.modules.library import PathLibrary, conv_library, linear_library
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import resolve_device, run_cli

ATARI_CONVS = ((8, 8, 4), (8, 4, 2), (8, 3, 1))


@dataclass
class BenchLibraryConfig:
    """What to time."""

    library_sizes: tuple[int, ...] = (10, 50, 200)
    """M values (modules per layer) to compare."""
    active: int = 3
    """N: modules per layer on the path."""
    population: int = 64
    """P: paths evaluated by forward_population against a loop."""
    min_run_time: float = 1.0
    """Seconds each timing runs for (more is steadier)."""
    threads: int = 1
    """Torch threads."""
    settings: tuple[Literal["mlp-paper", "mlp-wide", "atari-conv"], ...] = (
        "mlp-paper",
        "mlp-wide",
        "atari-conv",
    )
    """Network shapes to time (the first one gives the headline figures)."""
    seed: int = 0
    """Seed of the libraries, inputs and paths."""
    device: str = "cpu"
    """Where the libraries, baselines and inputs live: cpu, cuda, cuda:N or auto."""
    json: str | None = None
    """Also write the figures to this JSON file."""

    def __post_init__(self) -> None:
        if not self.library_sizes or min(self.library_sizes) < self.active:
            raise ValueError("every library size M must be at least N (--active)")
        if min(self.active, self.population, self.threads) <= 0 or self.min_run_time <= 0:
            raise ValueError("active, population, threads and min_run_time must be positive")
        if not self.settings:
            raise ValueError("name at least one setting to time")
        resolve_device(self.device)  # CUDA asked for and absent: a one-line error


@dataclass(frozen=True)
class Setting:
    """One network shape to time: MLP (PathNet's binary MNIST) or conv (PathNet's Atari)."""

    name: str
    description: str
    batch: int
    kind: str  # "linear" or "conv"
    in_features: int = 0
    hidden: int = 0
    layers: int = 0


SETTINGS = {
    setting.name: setting
    for setting in (
        Setting("mlp-paper", "784 inputs, 3 layers of 20-unit modules, batch 16", 16, "linear",
                784, 20, 3),
        Setting("mlp-wide", "784 inputs, 3 layers of 256-unit modules, batch 256", 256, "linear",
                784, 256, 3),
        Setting("atari-conv", "4x84x84, convs of 8 kernels + 50-unit linear, batch 32", 32,
                "conv"),
    )
}  # fmt: skip


class DenseBaseline(nn.Module):
    """The path's computation without a library: N modules fused into one layer per layer."""

    def __init__(self, library: PathLibrary, active: int) -> None:
        super().__init__()
        self.active = active
        self.blocks = nn.ModuleList()
        for layer in library.layers:
            if hasattr(layer, "kernel_size"):
                self.blocks.append(
                    nn.Conv2d(
                        layer.in_channels,
                        active * layer.out_channels,
                        layer.kernel_size,
                        layer.stride,
                    )
                )
            else:
                self.blocks.append(nn.Linear(layer.in_features, active * layer.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, ...] -> [B, F]
        for block in self.blocks:
            if isinstance(block, nn.Linear) and x.dim() > 2:
                x = x.flatten(1)
            y = F.relu(block(x))  # [B, N*C, ...]
            x = y.view(y.shape[0], self.active, -1, *y.shape[2:]).sum(1)
        return x.flatten(1)


def build(setting: Setting, modules: int, device: torch.device) -> tuple[PathLibrary, torch.Tensor]:
    """The setting's library with M = ``modules`` and an input batch, on ``device``."""
    if setting.kind == "conv":
        library = conv_library((4, 84, 84), ATARI_CONVS, modules, linear_units=50)
        x = torch.rand(setting.batch, 4, 84, 84)
    else:
        library = linear_library(setting.in_features, setting.hidden, setting.layers, modules)
        x = torch.rand(setting.batch, setting.in_features)
    return library.to(device), x.to(device)


def median_seconds(stmt: str, env: dict[str, Any], cfg: BenchLibraryConfig) -> float:
    timer = benchmark.Timer(stmt=stmt, globals=env, num_threads=cfg.threads)
    return timer.blocked_autorange(min_run_time=cfg.min_run_time).median


def time_path_vs_dense(setting: Setting, cfg: BenchLibraryConfig) -> dict[int, dict[str, float]]:
    """Forward+backward seconds of one path (for each M) and of the dense baseline."""
    rows = {}
    device = resolve_device(cfg.device)
    for modules in cfg.library_sizes:
        library, x = build(setting, modules, device)
        path = torch.stack([torch.randperm(modules)[: cfg.active] for _ in library.layers])
        dense = DenseBaseline(library, cfg.active).to(device)
        env = {"library": library, "dense": dense, "x": x, "path": path}
        ours = median_seconds("library(x, path).sum().backward()", env, cfg)
        baseline = median_seconds("dense(x).sum().backward()", env, cfg)
        rows[modules] = {
            "path_ms": ours * 1e3,
            "dense_ms": baseline * 1e3,
            "ratio": ours / baseline,
        }
    return rows


def time_population(setting: Setting, cfg: BenchLibraryConfig) -> dict[str, float]:
    """Forward seconds of P paths in one call against a Python loop over them."""
    device = resolve_device(cfg.device)
    library, x = build(setting, max(cfg.library_sizes[0], cfg.active), device)
    modules = library.modules_per_layer[0]
    paths = torch.randint(0, modules, (cfg.population, library.num_layers, cfg.active))  # CPU
    env = {"library": library, "x": x, "paths": paths, "torch": torch}
    with torch.no_grad():
        batched = median_seconds("library.forward_population(x, paths)", env, cfg)
        looped = median_seconds("torch.stack([library(x, p) for p in paths])", env, cfg)
    return {"population_ms": batched * 1e3, "loop_ms": looped * 1e3, "speedup": looped / batched}


def main(cfg: BenchLibraryConfig) -> dict[str, Any]:
    """Time every setting; print the tables; return (and optionally write) the figures."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    console = Console()
    results: dict[str, Any] = {
        "active": cfg.active, "population": cfg.population,
        "device": str(resolve_device(cfg.device)), "settings": {},
    }  # fmt: skip
    for name in cfg.settings:
        setting = SETTINGS[name]
        rows = time_path_vs_dense(setting, cfg)
        population = time_population(setting, cfg)
        results["settings"][setting.name] = {"path_vs_dense": rows, "population": population}
        table = Table(title=f"{name} ({setting.description}): one path of N={cfg.active}, fwd+bwd")
        for column in ("M", "path ms", "dense ms", "path / dense"):
            table.add_column(column, justify="right")
        for modules, row in rows.items():
            table.add_row(
                str(modules),
                f"{row['path_ms']:.3f}",
                f"{row['dense_ms']:.3f}",
                f"{row['ratio']:.2f}",
            )
        console.print(table)
        console.print(
            f"forward_population, P={cfg.population}: {population['population_ms']:.2f} ms vs "
            f"loop {population['loop_ms']:.2f} ms -> {population['speedup']:.1f}x faster\n"
        )
    headline = results["settings"][cfg.settings[0]]
    results["path_vs_dense"] = {m: row["ratio"] for m, row in headline["path_vs_dense"].items()}
    results["population_speedup"] = headline["population"]["speedup"]
    if cfg.json is not None:
        rd.write_json(cfg.json, results)
    return results


if __name__ == "__main__":
    run_cli(main, BenchLibraryConfig, description=__doc__.split("\n\n")[0])
