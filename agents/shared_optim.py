"""Optimisers whose statistics live in shared memory, for Hogwild A3C workers.

Mnih et al. 2016, arXiv:1602.01783, section 4 and supplementary section 7: "shared RMSProp" keeps
one vector of squared-gradient averages g for all threads, g ← αg + (1 − α)Δθ², and updates
θ ← θ − η Δθ / √(g + ε) (ε inside the square root, α = 0.99, ε = 0.1 in PathNet's settings).
Shared Adam (Kingma & Ba 2015, arXiv:1412.6980) is the common alternative.

Both are ordinary ``torch.optim.Optimizer``s. Their state is allocated in shared memory when
parameters are added (at construction, or with ``add_param_group`` for a new task's head), so
pickling one to a spawned worker together with the shared model (in the same pickle, so
parameters keep their identity) gives every worker the same statistics. Each worker keeps its
own ``param_groups``, so a per-worker learning rate is just ``group["lr"]``. Updates are
lock-free (Hogwild): concurrent steps may interleave, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

OPTIMIZERS = ("rmsprop", "adam")


def share_state(optimizer: torch.optim.Optimizer) -> None:
    """Move every tensor of ``optimizer``'s per-parameter state to shared memory."""
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                value.share_memory_()


class SharedRMSprop(torch.optim.Optimizer):
    """RMSProp with shared squared-gradient statistics, as in the A3C paper."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 7e-4,
        alpha: float = 0.99,
        eps: float = 0.1,
    ) -> None:
        if lr <= 0 or not 0.0 <= alpha < 1.0 or eps <= 0:
            raise ValueError(f"bad RMSProp settings lr={lr}, alpha={alpha}, eps={eps}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add parameters (e.g. a new task's head) with fresh statistics in shared memory."""
        super().add_param_group(param_group)
        for param in self.param_groups[-1]["params"]:
            self.state[param]["square_avg"] = torch.zeros_like(param).share_memory_()

    def share_memory(self) -> None:
        """Move the statistics to shared memory (again after ``load_state_dict``)."""
        share_state(self)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:
        for group in self.param_groups:
            alpha, eps, lr = group["alpha"], group["eps"], group["lr"]
            params = [param for param in group["params"] if param.grad is not None]
            if not params:
                continue
            # One multi-tensor op per line of the rule (a path's or an MoE head's dozens of
            # tensors would cost five Python-level ops each).
            grads = [param.grad for param in params]
            square_avgs = [self.state[param]["square_avg"] for param in params]
            torch._foreach_mul_(square_avgs, alpha)
            torch._foreach_addcmul_(square_avgs, grads, grads, value=1.0 - alpha)
            denominators = torch._foreach_add(square_avgs, eps)
            torch._foreach_sqrt_(denominators)
            torch._foreach_addcdiv_(params, grads, denominators, value=-lr)


class SharedAdam(torch.optim.Optimizer):
    """Adam with shared moment estimates and a shared step count per parameter."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if lr <= 0 or not all(0.0 <= b < 1.0 for b in betas) or eps <= 0:
            raise ValueError(f"bad Adam settings lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add parameters (e.g. a new task's head) with fresh statistics in shared memory."""
        super().add_param_group(param_group)
        for param in self.param_groups[-1]["params"]:
            state = self.state[param]
            state["step"] = torch.zeros((), dtype=torch.float64).share_memory_()
            state["exp_avg"] = torch.zeros_like(param).share_memory_()
            state["exp_avg_sq"] = torch.zeros_like(param).share_memory_()

    def share_memory(self) -> None:
        """Move the statistics to shared memory (again after ``load_state_dict``)."""
        share_state(self)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            eps, lr = group["eps"], group["lr"]
            params = [param for param in group["params"] if param.grad is not None]
            if not params:
                continue
            grads = [param.grad for param in params]
            states = [self.state[param] for param in params]
            steps = [state["step"] for state in states]
            torch._foreach_add_(steps, 1)
            counts = [float(step) for step in steps]  # a parameter's own count (heads join late)
            exp_avgs = [state["exp_avg"] for state in states]
            exp_avg_sqs = [state["exp_avg_sq"] for state in states]
            torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
            denominators = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denominators, [math.sqrt(1.0 - beta2**n) for n in counts])
            torch._foreach_add_(denominators, eps)
            step_sizes = [-lr / (1.0 - beta1**n) for n in counts]
            torch._foreach_addcdiv_(params, exp_avgs, denominators, step_sizes)


def make_shared_optimizer(
    name: str, params: Iterable[torch.Tensor], lr: float, alpha: float = 0.99, eps: float = 0.1
) -> SharedRMSprop | SharedAdam:
    """``rmsprop`` (the paper's, with ``alpha``/``eps``) or ``adam`` over ``params``."""
    if name == "rmsprop":
        return SharedRMSprop(params, lr=lr, alpha=alpha, eps=eps)
    if name == "adam":
        return SharedAdam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def apply_gradients(
    params: list[torch.Tensor],
    grads: Iterable[torch.Tensor | None],
    optimizer: torch.optim.Optimizer,
) -> None:
    """Step ``optimizer`` on the shared ``params`` with exactly these fresh ``grads``.

    The gradients are assigned on every call (a ``None`` leaves that parameter alone) and
    cleared after the step. The once-only hand-off of older A3C code (``if shared.grad is not
    None: return``) keeps the first gradient tensor forever once ``zero_grad`` sets gradients
    to ``None`` (the torch ≥ 2 default), silently stepping with stale gradients.
    """
    for param, grad in zip(params, grads, strict=True):
        param.grad = grad
    optimizer.step()
    for param in params:
        param.grad = None
