"""Benchmark of the MoE layer: parameters grow with the number of experts, time should not.

Shazeer et al. 2017, arXiv:1701.06538: a sparsely-gated mixture of E experts sends each example to
k of them, so its parameters grow with E while its computation per example stays that of k
experts. For E in ``--experts`` we time one training step (gradients set to ``None``, forward,
backward) of ``MoEModuleLayer(E, d, h, d, k, capacity_factor)`` on a batch of B examples with every
expert on the path (``ids = range(E)``), the loss being ``y.square().mean()`` plus the balancing
loss, against a dense baseline of the same active size (a two-layer ReLU network ``d -> k*h -> d``
of ``nn.Linear`` layers) and against a peer: the ``mixture-of-experts`` package (lucidrains,
einsum dispatch; ``pip install mixture-of-experts``, skipped with a note when it is missing) with
the same d, h, E, capacity factor and batch, timed the same way. All timings come from one run,
side by side: ``--rounds`` rounds each time the baseline and every E in turn (pathevo, then the
peer), and a figure is the median over the rounds of ``torch.utils.benchmark`` medians (one
thread by default), so a burst of load from another process hits every configuration alike.
Arithmetic: float32 throughout.

Goal (reported, not asserted; issue 27): from the first to the last E of ``--experts`` (4 and
256 by default) the parameters grow >= 64x while the time per batch grows <= 2x, and pathevo is
faster than the peer at every E. Parameters counted: the layer's experts and its gate (clean and
noise weights); the baseline's two linear layers; all of the peer's. The bench also measures the
machine's memory bandwidth (a single-thread copy) and prints the lower bound it sets on the last
E's step: its parameters read once and their gradients written once. ``--json PATH`` writes the
figures; ``--profile`` adds where a step's time goes at the first and last E. Run
``pathevo bench moe --profile --json moe_bench.json`` (figures and analysis: docs/moe_bench.md).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import statistics
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from rich.console import Console
from rich.table import Table
from torch import nn, profiler
from torch.utils import benchmark

from pathevo.modules.moe import MoEModuleLayer
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import run_cli

PARAM_GROWTH_GOAL = 64.0
"""Parameters at the last E over the first must be at least this (4 -> 256 experts)."""
TIME_GROWTH_GOAL = 2.0
"""Time per batch at the last E over the first must be at most this (issue 27; the peer's grows
1.9x on the issue's machine)."""
PEER = "mixture-of-experts"
"""The peer's distribution name on PyPI (module ``mixture_of_experts``)."""

MOE_STEP = """\
layer.zero_grad(set_to_none=True)
y, aux = layer.forward_with_aux(x, ids)
(y.square().mean() + aux).backward()"""
DENSE_STEP = """\
dense.zero_grad(set_to_none=True)
dense(x).square().mean().backward()"""
PEER_STEP = """\
peer.zero_grad(set_to_none=True)
y, aux = peer(x)
(y.square().mean() + aux).backward()"""


@dataclass
class BenchMoEConfig:
    """What to time."""

    experts: tuple[int, ...] = (4, 16, 64, 256)
    """E values (experts in the layer, all on the path); growth is last over first."""
    batch: int = 2048
    """B: examples per batch."""
    d_model: int = 256
    """d: in and out features of the layer (and of the dense baseline)."""
    hidden: int = 512
    """h: hidden units of one expert (the baseline has k*h)."""
    k: int = 2
    """Experts per example."""
    capacity_factor: float = 1.25
    """Expert capacity: C = ceil(capacity_factor * B * k / E) examples per expert."""
    min_run_time: float = 1.0
    """Seconds each timing runs for (more is steadier)."""
    rounds: int = 3
    """Rounds of timings (the baseline and every E each round); figures are medians over them."""
    threads: int = 1
    """Torch threads."""
    seed: int = 0
    """Seed of the layers, the inputs and the gates' noise."""
    peer: bool = True
    """Also time the ``mixture-of-experts`` package's ``MoE`` (top-2 only: needs k=2), if
    installed."""
    clock: Literal["wall", "cpu"] = "wall"
    """What a timing measures: elapsed time, or this thread's CPU time (steadier when other
    processes share the cores; it leaves out time spent waiting for them)."""
    bandwidth_mb: int = 256
    """Size in MB of the tensor copied to measure the memory bandwidth."""
    profile: bool = False
    """Also profile a few steps of the first and last E (torch.profiler, self CPU time) and
    print where the time goes: expert matmuls, weight stacking, gradient accumulation, gate
    matmuls, routing (sort, dispatch, combine), everything else."""
    json: str | None = None
    """Also write the figures to this JSON file."""

    def __post_init__(self) -> None:
        if not self.experts:
            raise ValueError("name at least one number of experts (--experts)")
        if min(self.batch, self.d_model, self.hidden, self.k, self.rounds, self.threads) <= 0:
            raise ValueError("batch, d_model, hidden, k, rounds and threads must be positive")
        if min(self.experts) < self.k:
            raise ValueError(f"every number of experts must be at least k={self.k}")
        if self.capacity_factor <= 0 or self.min_run_time <= 0 or self.bandwidth_mb <= 0:
            raise ValueError("capacity_factor, min_run_time and bandwidth_mb must be positive")


def dense_baseline(cfg: BenchMoEConfig) -> nn.Module:
    """The active size of the layer without routing: ``d -> k*h -> d``, ReLU in between."""
    return nn.Sequential(
        nn.Linear(cfg.d_model, cfg.k * cfg.hidden),
        nn.ReLU(),
        nn.Linear(cfg.k * cfg.hidden, cfg.d_model),
    )


def moe_layer(cfg: BenchMoEConfig, experts: int) -> MoEModuleLayer:
    layer = MoEModuleLayer(
        experts, cfg.d_model, cfg.hidden, cfg.d_model, k=cfg.k, capacity_factor=cfg.capacity_factor
    )
    return layer.train()


def moe_parameters(layer: MoEModuleLayer) -> dict[str, int]:
    """Parameters of the experts and of the gate (clean and noise weights of every task)."""
    experts = sum(p.numel() for kind in layer.parameter_kinds for p in getattr(layer, kind))
    gate = sum(p.numel() for p in [*layer.gates.values(), *layer.noise_gates.values()])
    return {"expert_params": experts, "gate_params": gate, "params": experts + gate}


def peer_status(cfg: BenchMoEConfig) -> str | None:
    """Why the peer is not timed (``None``: it is)."""
    if not cfg.peer:
        return "not asked for (--no-peer)"
    if cfg.k != 2:
        return f"the peer routes top-2 only; k={cfg.k}"
    if importlib.util.find_spec("mixture_of_experts") is None:
        return f"not installed (pip install {PEER})"
    return None


def peer_layer(cfg: BenchMoEConfig, experts: int) -> nn.Module:
    """The peer's ``MoE``: E experts ``d -> h -> d`` with ReLU, top-2, same capacity factor."""
    from mixture_of_experts import MoE

    layer = MoE(
        cfg.d_model, num_experts=experts, hidden_dim=cfg.hidden, activation=nn.ReLU,
        capacity_factor_train=cfg.capacity_factor,
    )  # fmt: skip
    return layer.train()


def median_seconds(stmt: str, env: dict[str, Any], cfg: BenchMoEConfig) -> float:
    clock = time.perf_counter if cfg.clock == "wall" else time.thread_time
    timer = benchmark.Timer(stmt=stmt, globals=env, num_threads=cfg.threads, timer=clock)
    return timer.blocked_autorange(min_run_time=cfg.min_run_time).median


def time_all(cfg: BenchMoEConfig) -> dict[str, Any]:
    """Seconds per step of the baseline, every E and the peer at every E, one entry per round."""
    x = torch.randn(cfg.batch, cfg.d_model)
    dense = dense_baseline(cfg)
    layers = {experts: moe_layer(cfg, experts) for experts in cfg.experts}
    peers = {}
    if peer_status(cfg) is None:
        peers = {experts: peer_layer(cfg, experts) for experts in cfg.experts}
    times: dict[str, Any] = {
        "dense": [],
        "moe": {e: [] for e in layers},
        "peer": {e: [] for e in peers},
    }
    for _ in range(cfg.rounds):
        times["dense"].append(median_seconds(DENSE_STEP, {"dense": dense, "x": x}, cfg))
        dense.zero_grad(set_to_none=True)
        for experts, layer in layers.items():
            env = {"layer": layer, "x": x, "ids": list(range(experts))}
            times["moe"][experts].append(median_seconds(MOE_STEP, env, cfg))
            layer.zero_grad(set_to_none=True)  # free the gradients before the next layer runs
            if experts in peers:
                env = {"peer": peers[experts], "x": x.unsqueeze(0)}  # [1, B, d]: one group
                times["peer"][experts].append(median_seconds(PEER_STEP, env, cfg))
                peers[experts].zero_grad(set_to_none=True)
    times["counts"] = {
        "dense": sum(p.numel() for p in dense.parameters()),
        "moe": {experts: moe_parameters(layer) for experts, layer in layers.items()},
        "peer": {e: sum(p.numel() for p in peer.parameters()) for e, peer in peers.items()},
        "capacity": {
            experts: layer.capacity(cfg.batch, experts) for experts, layer in layers.items()
        },
    }
    return times


def memory_bandwidth(megabytes: int, repeats: int = 5) -> float:
    """Bytes per second one thread moves copying one tensor into another (read + write), the
    best of ``repeats`` copies of ``megabytes`` MB (both tensors touched beforehand)."""
    source = torch.ones(megabytes << 18)  # float32: 4 bytes each
    target = torch.zeros_like(source)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - start)
    return 2 * source.nbytes / best


def byte_bound(params: int, bandwidth: float) -> dict[str, float]:
    """The least time a training step can take on memory traffic alone: every parameter read once
    (forward) and its gradient written once (backward), float32, at ``bandwidth`` bytes/s."""
    moved = 2 * 4 * params
    return {"bytes": moved, "seconds": moved / bandwidth, "ms": moved / bandwidth * 1e3}


PROFILE_STEPS = 3
ROUTING_OPS = {
    "aten::argsort", "aten::sort", "aten::bincount", "aten::cumsum", "aten::index",
    "aten::index_put_", "aten::_index_put_impl_", "aten::index_copy", "aten::index_add",
    "aten::index_add_", "aten::index_select", "aten::topk", "aten::scatter", "aten::scatter_",
    "aten::scatter_add_", "aten::gather", "aten::repeat", "aten::arange", "aten::nonzero",
}  # fmt: skip
CATEGORIES = (
    "expert matmuls",
    "weight stacking",
    "gradient accumulation",
    "gate matmuls",
    "routing",
    "other",
)
"""Where a step's self CPU time goes; "other" is elementwise work (ReLU, the gate's noise,
softplus and normal CDF, the loss), allocation and autograd bookkeeping."""


def category(event: Any, cfg: BenchMoEConfig) -> str:
    """The :data:`CATEGORIES` entry of one profiler event (by its name, shapes and callers)."""
    callers = []
    parent = event.cpu_parent
    while parent is not None:
        callers.append(parent.name)
        parent = parent.cpu_parent
    if "torch::autograd::AccumulateGrad" in callers:
        return "gradient accumulation"  # a gradient copied (or added) into a parameter's .grad
    if event.name in ("aten::stack", "aten::cat") or "aten::stack" in callers:
        return "weight stacking"
    if event.name in ("aten::mm", "aten::addmm"):
        return "gate matmuls"  # [B, d] x [d, E] and their gradients; the experts' are batched
    if event.name in ("aten::bmm", "aten::baddbmm"):
        shapes = [shape for shape in event.input_shapes if len(shape) == 3]
        # A population's gates are [P, B, d] x [P, d, E]; the experts' [E, C, .].
        gate = any(cfg.batch in shape[1:] for shape in shapes)
        return "gate matmuls" if gate else "expert matmuls"
    if event.name in ROUTING_OPS:
        return "routing"
    return "other"


def profile_step(layer: MoEModuleLayer, x: torch.Tensor, cfg: BenchMoEConfig) -> dict[str, float]:
    """Milliseconds of self CPU time per training step in each of :data:`CATEGORIES`."""
    ids = list(range(layer.num_modules))

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        y, aux = layer.forward_with_aux(x, ids)
        (y.square().mean() + aux).backward()

    step()  # warm-up
    with profiler.profile(activities=[profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(PROFILE_STEPS):
            step()
    layer.zero_grad(set_to_none=True)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in prof.events():
        totals[category(event, cfg)] += event.self_cpu_time_total
    return {name: micros / PROFILE_STEPS / 1e3 for name, micros in totals.items()}


def summary(times: list[float]) -> dict[str, Any]:
    """Median seconds (and ms) of a configuration's rounds, the rounds and their spread."""
    seconds = statistics.median(times)
    return {
        "seconds": seconds,
        "ms": seconds * 1e3,
        "rounds_ms": [t * 1e3 for t in times],
        "spread": (max(times) - min(times)) / seconds,
    }


def main(cfg: BenchMoEConfig) -> dict[str, Any]:
    """Time the baseline, every E and the peer; print the table and ratios; return (and write)
    them."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    bandwidth = memory_bandwidth(cfg.bandwidth_mb)
    times = time_all(cfg)
    counts = times["counts"]
    dense = {**summary(times["dense"]), "params": counts["dense"]}
    rows: dict[int, dict[str, Any]] = {}
    for experts, runs in times["moe"].items():
        row = summary(runs)
        rows[experts] = {
            **row,
            "vs_dense": row["seconds"] / dense["seconds"],
            "capacity": counts["capacity"][experts],
            **counts["moe"][experts],
        }
    first, last = rows[cfg.experts[0]], rows[cfg.experts[-1]]
    param_growth = last["params"] / first["params"]
    time_growth = last["seconds"] / first["seconds"]
    skipped = peer_status(cfg)
    peer: dict[str, Any] = {"package": PEER, "timed": skipped is None, "note": skipped}
    if skipped is None:
        peer["version"] = importlib.metadata.version(PEER)
        peer["experts"] = {
            experts: {**summary(runs), "params": counts["peer"][experts]}
            for experts, runs in times["peer"].items()
        }
        for experts, row in rows.items():
            row["vs_peer"] = row["seconds"] / peer["experts"][experts]["seconds"]
        peer_first, peer_last = (
            peer["experts"][e]["seconds"] for e in (cfg.experts[0], cfg.experts[-1])
        )
        peer["time_growth"] = peer_last / peer_first
    bound = byte_bound(last["params"], bandwidth)
    faster = None if skipped is not None else all(row["vs_peer"] < 1 for row in rows.values())
    results: dict[str, Any] = {
        "batch": cfg.batch,
        "d_model": cfg.d_model,
        "hidden": cfg.hidden,
        "k": cfg.k,
        "capacity_factor": cfg.capacity_factor,
        "threads": cfg.threads,
        "rounds": cfg.rounds,
        "min_run_time": cfg.min_run_time,
        "clock": cfg.clock,
        "arithmetic": "float32",
        "experts": rows,
        "dense": dense,
        "peer": peer,
        "param_growth": param_growth,
        "time_growth": time_growth,
        "dense_ratio": first["seconds"] / dense["seconds"],
        "bandwidth_gb_s": bandwidth / 1e9,
        "lower_bound": {
            "experts": cfg.experts[-1],
            **bound,
            "step_ms": last["ms"],
            "fraction": bound["seconds"] / last["seconds"],  # 1: the step runs at the bound
        },
        "goal": {
            "param_growth_min": PARAM_GROWTH_GOAL,
            "time_growth_max": TIME_GROWTH_GOAL,
            "faster_than_peer": faster,
            "met": param_growth >= PARAM_GROWTH_GOAL
            and time_growth <= TIME_GROWTH_GOAL
            and faster is not False,
        },
    }
    if cfg.profile:
        x = torch.randn(cfg.batch, cfg.d_model)
        results["profile"] = {
            experts: profile_step(moe_layer(cfg, experts), x, cfg)
            for experts in dict.fromkeys((cfg.experts[0], cfg.experts[-1]))
        }
    print_results(cfg, results)
    if cfg.json is not None:
        rd.write_json(cfg.json, results)
    return results


def print_results(cfg: BenchMoEConfig, results: dict[str, Any]) -> None:
    console = Console()
    peer = results["peer"]
    table = Table(
        title=(
            f"MoE layer vs dense and {PEER}, fwd+bwd per batch of {cfg.batch}: d={cfg.d_model}, "
            f"h={cfg.hidden}, k={cfg.k}, capacity factor {cfg.capacity_factor}, float32, "
            f"{cfg.threads} thread(s), {cfg.clock} clock, median of {cfg.rounds} round(s)"
        )
    )
    columns = ["", "capacity", "params", "ms / batch", "spread", "vs dense", "vs first E"]
    if peer["timed"]:
        columns += ["peer ms", "peer spread", "vs peer"]
    for column in columns:
        table.add_column(column, justify="right")
    dense = results["dense"]
    first_s = results["experts"][cfg.experts[0]]["seconds"]
    cells = ["dense", "-", f"{dense['params']:,}", f"{dense['ms']:.1f}", f"{dense['spread']:.0%}"]
    table.add_row(*cells, "1.00", "-", *(["-"] * 3 if peer["timed"] else []))
    for experts, row in results["experts"].items():
        cells = [
            f"E={experts}",
            str(row["capacity"]),
            f"{row['params']:,}",
            f"{row['ms']:.1f}",
            f"{row['spread']:.0%}",
            f"{row['vs_dense']:.2f}",
            f"{row['seconds'] / first_s:.2f}",
        ]
        if peer["timed"]:
            theirs = peer["experts"][experts]
            cells += [f"{theirs['ms']:.1f}", f"{theirs['spread']:.0%}", f"{row['vs_peer']:.2f}"]
        table.add_row(*cells)
    console.print(table)
    first, last = cfg.experts[0], cfg.experts[-1]
    goal = results["goal"]
    lines = [
        f"param_growth (E={last} / E={first}): {results['param_growth']:.1f}x "
        f"(goal >= {PARAM_GROWTH_GOAL:g}x)",
        f"time_growth (E={last} / E={first}): {results['time_growth']:.2f}x "
        f"(goal <= {TIME_GROWTH_GOAL:g}x)",
        f"dense_ratio (E={first} / dense): {results['dense_ratio']:.2f}",
    ]
    if peer["timed"]:
        verdict = "faster" if goal["faster_than_peer"] else "NOT faster"
        lines.append(
            f"peer: {PEER} {peer['version']}, time_growth {peer['time_growth']:.2f}x; "
            f"pathevo {verdict} at every E"
        )
    else:
        lines.append(f"peer: {PEER} not timed: {peer['note']}")
    bound = results["lower_bound"]
    lines.append(
        f"memory bandwidth (one-thread copy, read + write): {results['bandwidth_gb_s']:.1f} GB/s; "
        f"E={last} lower bound: {bound['bytes'] / 1e6:.0f} MB (parameters read once, gradients "
        f"written once) = {bound['ms']:.1f} ms; the step takes {bound['step_ms']:.1f} ms, "
        f"{1 / bound['fraction']:.1f}x the bound ({bound['fraction']:.0%} of it)"
    )
    lines.append(f"goal {'met' if goal['met'] else 'NOT met'}")
    console.print("\n".join(lines))
    if "profile" in results:
        table = Table(title=f"Where a step goes: self CPU ms (mean of {PROFILE_STEPS} steps)")
        table.add_column("")
        for experts in results["profile"]:
            table.add_column(f"E={experts}", justify="right")
        totals = {experts: sum(row.values()) for experts, row in results["profile"].items()}
        for name in CATEGORIES:
            cells = [
                f"{row[name]:.1f} ({row[name] / totals[experts]:.0%})"
                for experts, row in results["profile"].items()
            ]
            table.add_row(name, *cells)
        table.add_row("total", *(f"{total:.1f}" for total in totals.values()))
        console.print(table)


if __name__ == "__main__":
    run_cli(main, BenchMoEConfig, description=__doc__.split("\n\n")[0])
