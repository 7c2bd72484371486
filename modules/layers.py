"""Path layers: M modules of one kind stored as one stacked parameter.

PathNet (Fernando et al. 2017, arXiv:1701.08734): a layer holds M small modules (linear or conv
+ ReLU); a path activates up to N of them and the layer's output is the sum (or the mean) of the
active modules' outputs. The modules of a layer live in one tensor of shape ``[M, ...]`` so a
path's modules are gathered with one ``index_select`` and run as one matmul / conv with N·C_out
output channels. Compute grows with N, not with M.

New layer kinds (MoE, hyper-generated weights) subclass :class:`ModuleLayer`: they expose their
stacked parameters (leading dimension M) so that freezing and re-initialisation work unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

REDUCTIONS = ("sum", "mean")


def unique_weights(ids: torch.Tensor) -> torch.Tensor:
    """Weights that make duplicate module ids count once.

    ids: [..., N] long -> [..., N] float, 1.0 at the first occurrence of an id, 0.0 at repeats.
    """
    same = ids.unsqueeze(-1) == ids.unsqueeze(-2)  # [..., N, N]
    seen_before = torch.tril(same, diagonal=-1).any(-1)  # [..., N]
    return (~seen_before).to(torch.get_default_dtype())


def duplicate_weights(ids: torch.Tensor) -> torch.Tensor | None:
    """:func:`unique_weights` if any row of ``ids`` ([..., N]) repeats an id, else ``None``.

    The check runs in Python on the small path tensor: most paths have no duplicates, and then
    the layers skip the weighting altogether.
    """
    rows = ids.reshape(-1, ids.shape[-1]).tolist()
    if all(len(set(row)) == len(row) for row in rows):
        return None
    return unique_weights(ids)


def combine(
    outputs: torch.Tensor, weights: torch.Tensor | None, module_axis: int, reduce: str
) -> torch.Tensor:
    """Sum (or average) module outputs over ``module_axis``, duplicates counted once.

    outputs: [B, N, ...] (module_axis 1) or [P, B, N, ...] (module_axis 2); weights: ``None``
    (no duplicates) or [N] / [P, N] from :func:`unique_weights`.
    """
    if weights is None:
        return outputs.mean(module_axis) if reduce == "mean" else outputs.sum(module_axis)
    weights = weights.to(outputs.dtype)
    if reduce == "mean":
        weights = weights / weights.sum(-1, keepdim=True)
    if module_axis == 2:
        weights = weights.unsqueeze(1)  # [P, 1, N]
    weights = weights.reshape(weights.shape + (1,) * (outputs.dim() - module_axis - 1))
    return (outputs * weights).sum(dim=module_axis)


class ModuleLayer(nn.Module):
    """Base of all path layers: M modules, stacked parameters, frozen-module mask.

    Subclasses implement ``forward(x, ids)`` and ``forward_population(x, ids)`` and keep every
    trainable parameter with leading dimension ``num_modules``.
    """

    def __init__(self, num_modules: int, reduce: str = "sum") -> None:
        super().__init__()
        if num_modules <= 0:
            raise ValueError(f"a layer needs at least one module, got {num_modules}")
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        self.num_modules = num_modules
        self.reduce = reduce
        self.register_buffer("frozen", torch.zeros(num_modules, dtype=torch.bool))
        self.has_frozen = False
        """Python-side copy of ``frozen.any()``, kept by :meth:`freeze_modules` and loading."""
        self.register_load_state_dict_post_hook(_refresh_frozen_after_load)

    def freeze_modules(self, module_ids: torch.Tensor) -> None:
        """Mark ``module_ids`` ([K] long) frozen (no gradient reaches them from now on)."""
        self.frozen[module_ids.to(self.frozen.device)] = True
        self.refresh_frozen()

    def refresh_frozen(self) -> None:
        self.has_frozen = bool(self.frozen.any())

    def stacked_parameters(self) -> list[nn.Parameter]:
        """Parameters whose first dimension indexes the layer's modules."""
        return list(self.parameters(recurse=False))

    def reset_modules(self, module_ids: torch.Tensor) -> None:
        """Re-initialise the modules ``module_ids`` ([K] long) in place."""
        raise NotImplementedError

    def gather(self, param: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``param[ids]`` with no gradient flowing into frozen modules.

        param: [M, ...]; ids: [K] long -> [K, ...]. Masking here (not with tensor hooks) keeps
        the guarantee in spawned workers, where hooks are not pickled.
        """
        rows = param.index_select(0, ids)
        if not self.has_frozen:
            return rows
        frozen_rows = self.frozen.index_select(0, ids).view(-1, *([1] * (rows.dim() - 1)))
        return torch.where(frozen_rows, rows.detach(), rows)


def _refresh_frozen_after_load(layer: ModuleLayer, _incompatible_keys: object) -> None:
    layer.refresh_frozen()  # a top-level function (not a lambda) keeps layers picklable


class LinearModuleLayer(ModuleLayer):
    """M linear+ReLU modules ``in_features -> out_features``; weight [M, out, in], bias [M, out]."""

    def __init__(
        self,
        num_modules: int,
        in_features: int,
        out_features: int,
        reduce: str = "sum",
        activation: bool = True,
    ) -> None:
        super().__init__(num_modules, reduce)
        if in_features <= 0 or out_features <= 0:
            raise ValueError("linear modules need positive in/out features")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(num_modules, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num_modules, out_features))
        self.reset_modules(torch.arange(num_modules))

    @torch.no_grad()
    def reset_modules(self, module_ids: torch.Tensor) -> None:
        """nn.Linear's default initialisation, module by module."""
        bound = 1.0 / math.sqrt(self.in_features)
        for m in module_ids.tolist():
            nn.init.kaiming_uniform_(self.weight[m], a=math.sqrt(5))
            nn.init.uniform_(self.bias[m], -bound, bound)

    def forward(
        self, x: torch.Tensor, ids: torch.Tensor, dedup: torch.Tensor | None | str = "auto"
    ) -> torch.Tensor:
        # x: [B, in]; ids: [N] long -> [B, out]
        # dedup: combine()'s weights, or "auto" to compute them from ids
        n = ids.shape[0]
        weight = self.gather(self.weight, ids).reshape(n * self.out_features, self.in_features)
        bias = self.gather(self.bias, ids).reshape(n * self.out_features)
        y = F.linear(x, weight, bias)  # [B, N*out]
        if self.activation:
            y = F.relu(y)
        if isinstance(dedup, str):
            dedup = duplicate_weights(ids)
        return combine(y.view(x.shape[0], n, self.out_features), dedup, 1, self.reduce)

    def forward_population(
        self, x: torch.Tensor, ids: torch.Tensor, dedup: torch.Tensor | None | str = "auto"
    ) -> torch.Tensor:
        # x: [P, B, in] or [B, in] (shared input); ids: [P, N] long -> [P, B, out]
        p, n = ids.shape
        flat = ids.reshape(-1)
        weight = self.gather(self.weight, flat).view(p, n * self.out_features, self.in_features)
        bias = self.gather(self.bias, flat).view(p, 1, n * self.out_features)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(p, -1, -1)
        y = torch.baddbmm(bias, x, weight.transpose(1, 2))  # [P, B, N*out]
        if self.activation:
            y = F.relu(y)
        if isinstance(dedup, str):
            dedup = duplicate_weights(ids)
        return combine(y.view(p, x.shape[1], n, self.out_features), dedup, 2, self.reduce)


class Conv2dModuleLayer(ModuleLayer):
    """M conv+ReLU modules; weight [M, C_out, C_in, k, k], bias [M, C_out]."""

    def __init__(
        self,
        num_modules: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        reduce: str = "sum",
    ) -> None:
        super().__init__(num_modules, reduce)
        if min(in_channels, out_channels, kernel_size, stride) <= 0:
            raise ValueError("conv modules need positive channels, kernel size and stride")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.weight = nn.Parameter(
            torch.empty(num_modules, out_channels, in_channels, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(num_modules, out_channels))
        self.reset_modules(torch.arange(num_modules))

    @torch.no_grad()
    def reset_modules(self, module_ids: torch.Tensor) -> None:
        """nn.Conv2d's default initialisation, module by module."""
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
        for m in module_ids.tolist():
            nn.init.kaiming_uniform_(self.weight[m], a=math.sqrt(5))
            nn.init.uniform_(self.bias[m], -bound, bound)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """[C_out, H', W'] of one module for an input of spatial size H x W."""
        k, s = self.kernel_size, self.stride
        return self.out_channels, (height - k) // s + 1, (width - k) // s + 1

    def forward(
        self, x: torch.Tensor, ids: torch.Tensor, dedup: torch.Tensor | None | str = "auto"
    ) -> torch.Tensor:
        # x: [B, C_in, H, W]; ids: [N] long -> [B, C_out, H', W']
        # dedup: combine()'s weights, or "auto" to compute them from ids
        n, c = ids.shape[0], self.out_channels
        weight = self.gather(self.weight, ids).flatten(0, 1)  # [N*C_out, C_in, k, k]
        bias = self.gather(self.bias, ids).flatten()
        y = F.relu(F.conv2d(x, weight, bias, stride=self.stride))  # [B, N*C_out, H', W']
        if isinstance(dedup, str):
            dedup = duplicate_weights(ids)
        return combine(y.view(x.shape[0], n, c, *y.shape[-2:]), dedup, 1, self.reduce)

    def forward_population(
        self, x: torch.Tensor, ids: torch.Tensor, dedup: torch.Tensor | None | str = "auto"
    ) -> torch.Tensor:
        # x: [P, B, C_in, H, W] or [B, C_in, H, W] (shared input); ids: [P, N] long
        # -> [P, B, C_out, H', W']
        p, n = ids.shape
        c = self.out_channels
        flat = ids.reshape(-1)
        weight = self.gather(self.weight, flat).flatten(0, 1)  # [P*N*C_out, C_in, k, k]
        bias = self.gather(self.bias, flat).flatten()
        if x.dim() == 4:
            # One input for every path: a plain conv with all P*N*C_out filters.
            y = F.conv2d(x, weight, bias, stride=self.stride)
        else:
            b = x.shape[1]
            grouped = x.transpose(0, 1).reshape(b, p * self.in_channels, *x.shape[-2:])
            y = F.conv2d(grouped, weight, bias, stride=self.stride, groups=p)
        y = F.relu(y)  # [B, P*N*C_out, H', W']
        y = y.view(y.shape[0], p, n, c, *y.shape[-2:]).transpose(0, 1)  # [P, B, N, C, H', W']
        if isinstance(dedup, str):
            dedup = duplicate_weights(ids)
        return combine(y, dedup, 2, self.reduce)
