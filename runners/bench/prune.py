"""Benchmark: inference time of a pruned head, dense masked vs. sparse, and where sparse pays.

Lottery tickets (Frankle & Carbin 2019, arXiv:1803.03635; in RL Yu et al. 2020,
arXiv:1906.02768) leave heads at 80–98 % sparsity, but :mod:`pathevo.modules.pruning` keeps them
dense: ``torch.nn.utils.prune``'s forward pre-hook multiplies ``weight_orig`` by its mask on every
call. For an MLP head of ``--widths`` (default 256 -> 256 -> 18: a feature vector, a hidden layer,
an Atari action set; ReLU between) pruned layer-wise to each ``--sparsities`` level, we time one
no-grad forward on batches of ``--batches`` rows in four ways, side by side in one run:

- ``masked``: the pruned modules as training runs them (prune's hook, then a dense matmul);
- ``dense``: the same weights folded into plain ``nn.Linear``s (as ``prune.remove`` leaves
  them: zeros stored densely, no hook), what a deployed dense ticket costs;
- ``csr`` / ``coo``: the same weights as ``torch.sparse_csr`` / coalesced COO tensors,
  ``addmm(bias, W, xᵀ)ᵀ`` per layer (converted once, outside the timing).

Each of ``--rounds`` rounds times every configuration in turn (``torch.utils.benchmark``
medians, one thread by default); a figure is the median over rounds. The crossover of a sparse
representation at a batch size is the lowest measured sparsity from which it is faster than
``masked`` at that level and every higher one (``null`` if never); ``crossover_vs_dense`` is the
same against ``dense``. Run
``pathevo bench prune --json prune_bench.json``.
"""

from __future__ import annotations

import statistics
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils import benchmark

from pathevo.modules.pruning import attach_masks, magnitude_prune, masks, network_targets, sparsity
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli

METHODS = ("dense", "masked", "csr", "coo")
SPARSE_METHODS = ("csr", "coo")


@dataclass
class BenchPruneConfig:
    """What to time."""

    widths: tuple[int, ...] = (256, 256, 18)
    """Layer widths of the head, input first: 256 -> 256 -> 18 is two nn.Linear layers."""
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.9, 0.98)
    """Fractions of every layer's weights pruned (layer-wise magnitude pruning)."""
    batches: tuple[int, ...] = (1, 32)
    """Rows per forward (1: acting in one environment; 32: a batched rollout)."""
    min_run_time: float = 0.2
    """Seconds each timing runs for (more is steadier)."""
    rounds: int = 3
    """Rounds of timings (every configuration each round); figures are medians over them."""
    threads: int = 1
    """Torch threads."""
    seed: int = 0
    """Seed of the weights and inputs."""
    json: str | None = None
    """Also write the figures to this JSON file."""

    def __post_init__(self) -> None:
        if len(self.widths) < 2 or min(self.widths) <= 0:
            raise ValueError("widths needs at least two positive sizes (input, output)")
        if not self.sparsities or not all(0.0 <= s < 1.0 for s in self.sparsities):
            raise ValueError("sparsities must be non-empty and each in [0, 1)")
        if not self.batches or min(self.batches) <= 0:
            raise ValueError("batches must be non-empty and positive")
        if self.rounds <= 0 or self.threads <= 0 or self.min_run_time <= 0:
            raise ValueError("rounds, threads and min_run_time must be positive")


def make_head(widths: tuple[int, ...]) -> nn.Sequential:
    """Linear layers of ``widths`` with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if index:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


class SparseHead(nn.Module):
    """The pruned head's layers as sparse weights (CSR or COO): ``addmm(b, W, xᵀ)ᵀ``."""

    def __init__(self, head: nn.Sequential, layout: str) -> None:
        super().__init__()
        linears = [m for m in head if isinstance(m, nn.Linear)]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            effective = [linear.weight_orig * linear.weight_mask for linear in linears]
            self.weights = [
                w.to_sparse_csr() if layout == "csr" else w.to_sparse().coalesce()
                for w in effective
            ]
        self.biases = [linear.bias.detach().unsqueeze(1) for linear in linears]  # [out, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, in] -> [B, out]; activations are kept transposed ([features, B]) in between
        h = x.t()
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if index:
                h = torch.relu(h)
            h = torch.addmm(bias, weight, h)  # [out, B]
        return h.t()


def build_heads(cfg: BenchPruneConfig) -> tuple[nn.Module, dict[float, dict[str, nn.Module]]]:
    """The unpruned head and, per sparsity, the folded dense, masked and sparse versions of the
    same pruned weights."""
    torch.manual_seed(cfg.seed)
    dense = make_head(cfg.widths)
    heads: dict[float, dict[str, nn.Module]] = {}
    for level in cfg.sparsities:
        masked = make_head(cfg.widths)
        masked.load_state_dict(dense.state_dict())
        targets = network_targets(masked)
        attach_masks(targets)
        if level > 0:
            magnitude_prune(targets, level, "layer")
        folded = make_head(cfg.widths)
        folded.load_state_dict(dense.state_dict())
        with torch.no_grad():
            for (module, _), mask in zip(network_targets(folded), masks(targets), strict=True):
                module.weight.mul_(mask)  # what prune.remove leaves: zeros stored densely
        heads[level] = {
            "dense": folded,
            "masked": masked,
            "csr": SparseHead(masked, "csr"),
            "coo": SparseHead(masked, "coo"),
        }
    return dense, heads


def check_agreement(dense: nn.Module, heads: dict[float, dict[str, nn.Module]], width: int) -> None:
    """Every representation computes what the masked head computes."""
    x = torch.randn(4, width)
    with torch.no_grad():
        for level, row in heads.items():
            expected = row["masked"](x)
            for method in ("dense", *SPARSE_METHODS):
                if not torch.allclose(row[method](x), expected, atol=1e-5, rtol=1e-4):
                    raise RuntimeError(f"{method} disagrees with the masked head at {level}")
            if level == 0 and not torch.allclose(dense(x), expected, atol=1e-6):
                raise RuntimeError("the unpruned masked head disagrees with the dense head")


def median_seconds(head: nn.Module, x: torch.Tensor, cfg: BenchPruneConfig) -> float:
    timer = benchmark.Timer(
        stmt="with torch.no_grad(): head(x)",
        globals={"head": head, "x": x, "torch": torch},
        num_threads=cfg.threads,
    )
    return timer.blocked_autorange(min_run_time=cfg.min_run_time).median


def crossover(levels: list[float], sparse_s: list[float], masked_s: list[float]) -> float | None:
    """The lowest level from which sparse beats masked at it and every higher level."""
    found = None
    for level, sparse, masked in sorted(zip(levels, sparse_s, masked_s, strict=True), reverse=True):
        if sparse >= masked:
            break
        found = level
    return found


def main(cfg: BenchPruneConfig) -> dict[str, Any]:
    """Time every representation at every sparsity and batch; print and return the figures."""
    torch.set_num_threads(cfg.threads)
    dense, heads = build_heads(cfg)
    check_agreement(dense, heads, cfg.widths[0])
    inputs = {batch: torch.randn(batch, cfg.widths[0]) for batch in cfg.batches}
    times: dict[tuple[int, float, str], list[float]] = {}
    for _ in range(cfg.rounds):
        for batch, x in inputs.items():
            for level in cfg.sparsities:
                for method in METHODS:
                    key = (batch, level, method)
                    times.setdefault(key, []).append(median_seconds(heads[level][method], x, cfg))
    results: dict[str, Any] = {
        "widths": list(cfg.widths),
        "threads": cfg.threads,
        "rounds": cfg.rounds,
        "min_run_time": cfg.min_run_time,
        "params": sum(p.numel() for p in dense.parameters()),
        "batches": {},
        "crossover": {},
        "crossover_vs_dense": {},
    }
    for batch in cfg.batches:
        rows = []
        for level in cfg.sparsities:
            row: dict[str, Any] = {
                "sparsity": level,
                "measured_sparsity": sparsity(network_targets(heads[level]["masked"])),
            }
            for method in METHODS:
                seconds = statistics.median(times[(batch, level, method)])
                row[f"{method}_us"] = seconds * 1e6
                row[f"{method}_spread"] = _spread(times[(batch, level, method)])
            for method in SPARSE_METHODS:
                row[f"{method}_speedup"] = row["masked_us"] / row[f"{method}_us"]
            rows.append(row)
        results["batches"][batch] = rows
        levels = [row["sparsity"] for row in rows]
        results["crossover"][batch] = {
            method: crossover(
                levels, [r[f"{method}_us"] for r in rows], [r["masked_us"] for r in rows]
            )
            for method in SPARSE_METHODS
        }
        results["crossover_vs_dense"][batch] = {
            method: crossover(
                levels, [r[f"{method}_us"] for r in rows], [r["dense_us"] for r in rows]
            )
            for method in SPARSE_METHODS
        }
    print_results(cfg, results)
    if cfg.json is not None:
        rd.write_json(cfg.json, results)
    return results


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def print_results(cfg: BenchPruneConfig, results: dict[str, Any]) -> None:
    console = Console()
    shape = " -> ".join(map(str, cfg.widths))
    for batch, rows in results["batches"].items():
        table = Table(
            title=(
                f"Pruned head {shape}, batch {batch}: µs per no-grad forward, "
                f"{cfg.threads} thread(s), median of {cfg.rounds} round(s)"
            )
        )
        columns = ("sparsity", "dense (folded)", "masked", "csr", "coo")
        columns += ("csr vs masked", "coo vs masked")
        for column in columns:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(
                f"{row['measured_sparsity']:.0%}",
                *(f"{row[f'{m}_us']:.1f}" for m in METHODS),
                *(f"{row[f'{m}_speedup']:.2f}x" for m in SPARSE_METHODS),
            )
        console.print(table)
        for method, level in results["crossover"][batch].items():
            where = "never (not at any measured sparsity)" if level is None else f"{level:.0%}"
            console.print(f"crossover batch {batch}, {method} beats masked from: {where}")
        for method, level in results["crossover_vs_dense"][batch].items():
            where = "never (not at any measured sparsity)" if level is None else f"{level:.0%}"
            console.print(f"crossover batch {batch}, {method} beats folded dense from: {where}")


if __name__ == "__main__":
    run_cli(main, BenchPruneConfig, description=__doc__.split("\n\n")[0])
