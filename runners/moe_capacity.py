"""Capacity at flat compute: a sparsely-gated MoE layer with E = 1, 4, 16, 64 experts.

Shazeer et al. 2017, "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts
Layer", arXiv:1701.06538 (its central result, figures 2-3: more experts at the same computation
per example keep lowering the test loss, as long as data is plentiful), at CPU scale.

The task is generated and never runs out: inputs x ~ N(0, I_d) fall into R regions (the nearest of
R fixed random centroids), and each region has its own random teacher network ``d -> tanh(t) -> o``;
the target is the region's teacher output, normalised to unit variance. Every training step draws a
fresh batch from a seeded generator (the same stream for every E); a fixed held-out set measures the
result. The student is an input projection, one :class:`pathevo.modules.moe.MoEModuleLayer` over all
E experts (top k, the layer's balancing loss added to the training loss) and a linear output layer.
E = 1 is the dense baseline: one expert of k times the hidden width, k = 1, so every example uses
the same expert parameters for every E.

Run ``pathevo moe_capacity --help`` for the options; ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from pathevo.modules.gating import cv_squared
from pathevo.modules.moe import DEFAULT_TASK, MoEModuleLayer
from pathevo.runners.plumbing import run_dir as rd
from pathevo.runners.plumbing.cli import resolve_device, run_cli
from pathevo.runners.plumbing.plots import save_figure

RUNNER = "moe_capacity"
FIGURE = "moe_capacity.png"


@dataclass
class MoECapacityConfig:
    """Held-out quality of an MoE layer against its number of experts at fixed active size."""

    seed: int = 0
    """Seed of the task, the data streams and every model's initialisation."""
    experts: tuple[int, ...] = (1, 4, 16, 64)
    """E values to train, in order; 1 is the dense baseline (one expert of k·hidden units)."""
    k: int = 2
    """Experts per example (top k of the gate) for every E > 1."""
    steps: int = 10000
    """Training steps for every E (each on a fresh batch)."""
    batch_size: int = 256
    """Examples per step; also the chunk size of held-out evaluation (same expert capacity)."""
    lr: float = 3e-3
    """Adam learning rate (the same optimiser and schedule for every E)."""
    cosine: bool = True
    """Decay the learning rate to zero along a half cosine over the steps (else constant)."""
    input_dim: int = 16
    """d: input dimension of the task."""
    regions: int = 64
    """R: input regions (nearest of R random centroids), each with its own teacher."""
    teacher_hidden: int = 8
    """Hidden tanh units of each region's teacher network."""
    outputs: int = 8
    """o: regression targets per example."""
    model_dim: int = 64
    """Width of the input projection, of the MoE layer's input and output."""
    expert_hidden: int = 32
    """Hidden units of each expert (the dense E=1 expert has k times as many)."""
    capacity_factor: float | None = 1.25
    """Expert capacity C = ceil(factor · batch · k / E); None: unlimited."""
    w_importance: float = 0.1
    """Coefficient of the importance (CV² of gate sums) balancing loss."""
    w_load: float = 0.1
    """Coefficient of the load (CV² of smooth load) balancing loss."""
    heldout: int = 8192
    """Size of the fixed held-out set."""
    eval_every: int = 500
    """Steps between held-out evaluations (TensorBoard, learning curves)."""
    log_every: int = 50
    """Steps between TensorBoard training scalars (means over the interval)."""
    threads: int = 1
    """Torch intra-op threads (1 measured fastest on a 2-core CPU; see docs/moe_capacity.md)."""
    device: str = "cpu"
    """Where the models train and are evaluated: cpu, cuda, cuda:N or auto (the task's batches
    are drawn on the CPU, from the same streams, and moved there)."""
    run_dir: str | None = None
    """Where to write the run (default: runs/moe_capacity-<time>-s<seed>)."""
    resume: str | None = None
    """Continue the run in this directory: finished E values are kept (other flags are ignored)."""
    progress: bool = True
    """Show a progress display."""

    def __post_init__(self) -> None:
        if not self.experts:
            raise ValueError("experts must list at least one E")
        if min(self.experts) < 1:
            raise ValueError(f"every E must be >= 1, got experts={list(self.experts)}")
        if len(set(self.experts)) != len(self.experts):
            raise ValueError(f"experts must be distinct, got {list(self.experts)}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        too_few = [e for e in self.experts if 1 < e < self.k]
        if too_few:
            raise ValueError(
                f"k={self.k} > E={too_few[0]}: the gate cannot pick more experts than exist "
                "(only the dense E=1 baseline may have fewer)"
            )
        sizes = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "input_dim": self.input_dim,
            "regions": self.regions,
            "teacher_hidden": self.teacher_hidden,
            "outputs": self.outputs,
            "model_dim": self.model_dim,
            "expert_hidden": self.expert_hidden,
            "heldout": self.heldout,
            "eval_every": self.eval_every,
            "log_every": self.log_every,
            "threads": self.threads,
        }
        bad = [f"{name}={value}" for name, value in sizes.items() if value <= 0]
        if bad:
            raise ValueError(f"sizes must be positive, got {', '.join(bad)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        resolve_device(self.device)  # CUDA asked for and absent: a one-line error
        if self.capacity_factor is not None and not self.capacity_factor > 0:
            raise ValueError(
                f"capacity_factor must be positive or None, got {self.capacity_factor}"
            )
        if self.w_importance < 0 or self.w_load < 0:
            raise ValueError("w_importance and w_load must be non-negative")


def stream_seed(seed: int, stream: str) -> int:
    """A seed for one named random stream of a run ("task", "data", "init/E=4", ...).

    Hashed rather than added up, so that no two streams of any two runs share a seed.
    """
    digest = hashlib.sha256(f"moe_capacity/{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# --- the task --------------------------------------------------------------------------------


class RegionTeacherTask:
    """R nearest-centroid regions of R^d, each with its own random ``d -> tanh(t) -> o`` teacher.

    Built from ``seed`` alone. Targets are shifted and scaled to zero mean and unit variance per
    output (statistics of a large sample), so a held-out MSE of 1 is the constant predictor's.
    """

    def __init__(self, cfg: MoECapacityConfig) -> None:
        g = torch.Generator().manual_seed(stream_seed(cfg.seed, "task"))
        d, r, t, o = cfg.input_dim, cfg.regions, cfg.teacher_hidden, cfg.outputs
        self.input_dim = d
        self.centroids = torch.randn(r, d, generator=g)  # [R, d]
        self.w1 = torch.randn(r, d, t, generator=g) * (2.0 / math.sqrt(d))  # [R, d, t]
        self.b1 = torch.randn(r, t, generator=g)  # [R, t]
        self.w2 = torch.randn(r, t, o, generator=g) / math.sqrt(t)  # [R, t, o]
        self.b2 = torch.randn(r, o, generator=g)  # [R, o]: regions differ in level too
        self.mean = torch.zeros(o)
        self.std = torch.ones(o)
        statistics = torch.Generator().manual_seed(stream_seed(cfg.seed, "normalisation"))
        _, y = self.sample(65536, statistics)  # y: [N, o]
        self.mean, self.std = y.mean(0), y.std(0)

    def region(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, d] -> [B] long: index of the nearest centroid
        distance = (self.centroids**2).sum(1) - 2 * x @ self.centroids.t()  # [B, R] (+ |x|²)
        return distance.argmin(1)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, d] -> [B, o]: the teacher of each example's region
        r = self.region(x)  # [B]
        hidden = torch.tanh(torch.einsum("bd,bdt->bt", x, self.w1[r]) + self.b1[r])  # [B, t]
        y = torch.einsum("bt,bto->bo", hidden, self.w2[r]) + self.b2[r]  # [B, o]
        return (y - self.mean) / self.std

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # -> (x [n, d], y [n, o])
        x = torch.randn(n, self.input_dim, generator=generator)
        return x, self.target(x)


# --- the model -------------------------------------------------------------------------------


class MoERegressor(nn.Module):
    """Input projection ``d -> D``, one MoE layer ``D -> D`` over all E experts, output ``D -> o``.

    E = 1 is the dense baseline: a single expert with k·hidden units and k = 1, so the expert
    parameters an example uses (two layers of k·hidden units) match k experts of ``hidden``.
    """

    def __init__(self, cfg: MoECapacityConfig, experts: int) -> None:
        super().__init__()
        dense = experts == 1
        self.k = 1 if dense else cfg.k
        self.hidden = cfg.k * cfg.expert_hidden if dense else cfg.expert_hidden
        self.proj = nn.Linear(cfg.input_dim, cfg.model_dim)
        self.moe = MoEModuleLayer(
            experts,
            cfg.model_dim,
            self.hidden,
            cfg.model_dim,
            k=self.k,
            capacity_factor=cfg.capacity_factor,
            w_importance=cfg.w_importance,
            w_load=cfg.w_load,
        )
        self.out = nn.Linear(cfg.model_dim, cfg.outputs)
        self.ids = list(range(experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [B, d] -> (prediction [B, o], balancing loss [])
        z, aux = self.moe.forward_with_aux(self.proj(x), self.ids)  # z: [B, D]
        return self.out(z), aux

    def parameter_counts(self) -> dict[str, int]:
        """Total parameters, and those one example uses at inference (active)."""
        width = self.proj.out_features
        expert = 2 * width * self.hidden + self.hidden + width  # w1, b1, w2, b2
        gate = width * len(self.ids)  # the clean gate W_g (W_noise only adds training noise)
        outer = sum(p.numel() for layer in (self.proj, self.out) for p in layer.parameters())
        return {
            "params": sum(p.numel() for p in self.parameters()),
            "active_params": outer + gate + self.k * expert,
            "active_expert_params": self.k * expert,
        }


# --- training and evaluation -----------------------------------------------------------------


@torch.no_grad()
def evaluate(model: MoERegressor, x: torch.Tensor, y: torch.Tensor, chunk: int) -> dict[str, float]:
    """Held-out MSE, R², and the routing (eval mode: no gate noise) in chunks of ``chunk``.

    x: [N, d]; y: [N, o]. ``load_cv2`` is CV² of per-expert token counts (the layer's own record
    of its top-k choices, before capacity); ``dropped`` the share of those choices that found
    their expert full.
    """
    was_training = model.training
    model.eval()
    experts = len(model.ids)
    counts = torch.zeros(experts)  # [E]
    squared, dropped = 0.0, 0.0
    model.moe.take_routing()  # forget the training passes' routing
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]  # [b, d], [b, o]
        prediction, _ = model(xb)
        squared += float(F.mse_loss(prediction, yb, reduction="sum"))
        picks = model.moe.take_routing()[DEFAULT_TASK].picks  # [E]
        capacity = model.moe.capacity(xb.shape[0], experts)
        dropped += float((picks - capacity).clamp_min(0).sum())
        counts += picks
    model.train(was_training)
    mse = squared / y.numel()
    variance = float(((y - y.mean(0)) ** 2).mean())
    return {
        "heldout_loss": mse,
        "heldout_r2": 1.0 - mse / variance,
        "load_cv2": float(cv_squared(counts)),
        "dropped": dropped / float(counts.sum()),
    }


def train_one(
    cfg: MoECapacityConfig,
    experts: int,
    task: RegionTeacherTask,
    heldout: tuple[torch.Tensor, torch.Tensor],
    writer: SummaryWriter,
    progress: Progress,
    bar: Any,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Train the model with ``experts`` experts; its result row and final state dict."""
    torch.manual_seed(stream_seed(cfg.seed, f"init/E={experts}"))  # initialisation, gate noise
    data = torch.Generator().manual_seed(stream_seed(cfg.seed, "data"))  # the same for every E
    device = resolve_device(cfg.device)
    model = MoERegressor(cfg, experts).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: 0.5 * (1 + math.cos(math.pi * step / cfg.steps)) if cfg.cosine else 1,
    )
    curve: list[list[float]] = []
    train_seconds, sums, started = 0.0, torch.zeros(2), time.perf_counter()
    progress.update(bar, description=f"E={experts:<4} k={model.k}", completed=0, loss=float("nan"))
    for step in range(1, cfg.steps + 1):
        x, y = task.sample(cfg.batch_size, data)  # x: [B, d], y: [B, o]
        x, y = x.to(device), y.to(device)
        tick = time.perf_counter()
        prediction, aux = model(x)  # prediction: [B, o]
        mse = F.mse_loss(prediction, y)
        optimiser.zero_grad(set_to_none=True)
        (mse + aux).backward()
        optimiser.step()
        schedule.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the step's kernels are done: its time is measured
        train_seconds += time.perf_counter() - tick
        sums += torch.stack([mse.detach(), aux.detach()]).cpu()
        if step % cfg.log_every == 0:
            mean_mse, mean_aux = (sums / cfg.log_every).tolist()
            writer.add_scalar("losses/train_loss", mean_mse, step)
            writer.add_scalar("losses/aux_loss", mean_aux, step)
            sums.zero_()
            progress.update(bar, completed=step, loss=mean_mse)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = evaluate(model, *heldout, cfg.batch_size)
            writer.add_scalar("charts/heldout_loss", metrics["heldout_loss"], step)
            writer.add_scalar("charts/heldout_r2", metrics["heldout_r2"], step)
            writer.add_scalar("moe/load_cv2", metrics["load_cv2"], step)
            curve.append([step, metrics["heldout_loss"]])
    progress.update(bar, completed=cfg.steps)
    result = {
        "experts": experts,
        "k": model.k,
        "expert_hidden": model.hidden,
        **model.parameter_counts(),
        **metrics,
        "train_seconds_per_step": train_seconds / cfg.steps,
        "seconds": time.perf_counter() - started,
        "curve": curve,
    }
    return result, model.cpu().state_dict()  # the checkpoint holds CPU tensors


# --- run ---------------------------------------------------------------------------------


def open_run(cfg: MoECapacityConfig) -> tuple[MoECapacityConfig, Path, dict[str, Any]]:
    """A new run directory, or the resumed run's config, directory and checkpoint."""
    fresh: dict[str, Any] = {"results": {}, "models": {}, "summary": None}
    if cfg.resume is None:
        run_path = rd.prepare_run_dir(cfg.run_dir, RUNNER, cfg.seed)
        rd.save_config(run_path, cfg)
        return cfg, run_path, fresh
    run_path = Path(cfg.resume)
    saved = rd.load_config(run_path, MoECapacityConfig)
    cfg = dataclasses.replace(saved, resume=cfg.resume, progress=cfg.progress)
    state = rd.load_checkpoint(run_path, RUNNER, {"results": dict, "models": dict})
    return cfg, run_path, state or fresh


def main(cfg: MoECapacityConfig) -> dict[str, Any]:
    """Train every E (or the ones a resumed run lacks); return the summary in summary.json."""
    cfg, run_path, state = open_run(cfg)
    if state.get("summary") is not None:
        return state["summary"]  # the run had finished
    torch.set_num_threads(cfg.threads)
    task = RegionTeacherTask(cfg)
    heldout = task.sample(
        cfg.heldout, torch.Generator().manual_seed(stream_seed(cfg.seed, "heldout"))
    )
    heldout = tuple(part.to(resolve_device(cfg.device)) for part in heldout)  # x: [N, d], y

    writer = rd.segment_writer(run_path, "")  # config and summary: every session writes all
    writer.add_text("config", f"```\n{json.dumps(dataclasses.asdict(cfg), indent=2)}\n```")
    console = Console()
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("train mse {task.fields[loss]:.3f}"), TimeElapsedColumn(),
        console=console, disable=not cfg.progress,
    )  # fmt: skip
    with progress:
        bar = progress.add_task("", total=cfg.steps, loss=float("nan"))
        for experts in cfg.experts:
            if str(experts) in state["results"]:
                continue  # finished before the run was interrupted
            # Its own event directory: a training a killed run left unfinished is done again,
            # the events of that earlier attempt purged.
            with rd.segment_writer(run_path, f"E{experts}") as experts_writer:
                result, weights = train_one(
                    cfg, experts, task, heldout, experts_writer, progress, bar
                )
            state["results"][str(experts)] = result
            state["models"][str(experts)] = weights
            rd.save_checkpoint(run_path, state)

    summary = summarise(cfg, [state["results"][str(e)] for e in cfg.experts])
    rd.write_json(run_path / rd.SUMMARY, summary)
    plot(run_path / FIGURE, summary)
    for row in summary["results"]:
        writer.add_scalar("summary/heldout_r2", row["heldout_r2"], row["experts"])
        writer.add_scalar("summary/heldout_loss", row["heldout_loss"], row["experts"])
    writer.close()
    state["summary"] = summary
    rd.save_checkpoint(run_path, state)
    print_table(console, summary, run_path)
    return summary


def summarise(cfg: MoECapacityConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json: the task, the training budget and one row per E (in the order run)."""
    return {
        "task": {
            "kind": "regression",
            "input_dim": cfg.input_dim,
            "regions": cfg.regions,
            "teacher_hidden": cfg.teacher_hidden,
            "outputs": cfg.outputs,
            "heldout": cfg.heldout,
        },
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "k": cfg.k,
        "experts": [row["experts"] for row in rows],
        "heldout_r2": [row["heldout_r2"] for row in rows],
        "heldout_loss": [row["heldout_loss"] for row in rows],
        "results": rows,
    }


def plot(out: Path, summary: dict[str, Any]) -> None:
    """Held-out R² against E and against parameter count, and held-out loss curves; PNG."""
    rows = summary["results"]
    experts = [row["experts"] for row in rows]
    r2 = [row["heldout_r2"] for row in rows]
    params = [row["params"] for row in rows]
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    for ax, xs, label in ((axes[0], experts, "experts E"), (axes[1], params, "parameters")):
        order = sorted(range(len(xs)), key=xs.__getitem__)
        ax.plot([xs[i] for i in order], [r2[i] for i in order], "o-", color="tab:green")
        for x, y, e in zip(xs, r2, experts, strict=True):
            ax.annotate(f"E={e}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_xscale("log", base=2 if ax is axes[0] else 10)
        ax.set_xlabel(label)
        ax.set_ylabel("held-out R²")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"flat compute: k={summary['k']}, {summary['steps']} steps", fontsize=9)
    axes[1].set_title("same points against total parameters", fontsize=9)
    for row in rows:
        steps, losses = zip(*row["curve"], strict=True)
        axes[2].plot(steps, losses, label=f"E={row['experts']}")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel("held-out MSE")
    axes[2].set_title("held-out loss during training", fontsize=9)
    axes[2].legend(fontsize=8)
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)


def print_table(console: Console, summary: dict[str, Any], run_path: Path) -> None:
    task = summary["task"]
    table = Table(
        title=f"{task['regions']} region teachers, {summary['steps']} steps × "
        f"{summary['batch_size']}: held-out quality against E"
    )
    for column in ("E", "params", "active", "held-out MSE", "R²", "ms/step", "load CV²"):
        table.add_column(column, justify="right")
    for row in summary["results"]:
        table.add_row(
            str(row["experts"]),
            f"{row['params']:,}",
            f"{row['active_params']:,}",
            f"{row['heldout_loss']:.4f}",
            f"{row['heldout_r2']:.4f}",
            f"{row['train_seconds_per_step'] * 1e3:.1f}",
            f"{row['load_cv2']:.3f}",
        )
    console.print(table)
    console.print(f"Run: {run_path}")


if __name__ == "__main__":
    run_cli(main, MoECapacityConfig, description=__doc__.split("\n\n")[0])
