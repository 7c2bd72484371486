"""The module library: L path layers of M modules each, plus freezing for transfer.

PathNet (Fernando et al. 2017, arXiv:1701.08734). A path is a LongTensor ``[L, N]`` of module ids;
``forward(x, path)`` runs only those modules. After a task is learned its best path is frozen:
those modules must stay *bitwise* identical under any later training. Two guards do that: a
frozen module's parameters stop requiring gradients (so no gradient, and no optimiser update,
reaches them), and :meth:`PathLibrary.guard` registers an optimiser post-step hook that writes
the frozen values back, whatever the optimiser does (momentum, weight decay, a user who turned
``requires_grad`` back on).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from modules.layers import (
    Conv2dModuleLayer,
    LinearModuleLayer,
    ModuleLayer,
    duplicate_weights,
)


class PathLibrary(nn.Module):
    """L layers of modules; every trainable part of every task's path lives here."""

    def __init__(self, layers: Sequence[ModuleLayer], output_size: int) -> None:
        super().__init__()
        if not layers:
            raise ValueError("a library needs at least one layer")
        self.layers = nn.ModuleList(layers)
        self.output_size = output_size
        self._frozen_values: dict[tuple[int, str, int], torch.Tensor] = {}
        self.register_load_state_dict_post_hook(_snapshot_after_load)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def modules_per_layer(self) -> list[int]:
        return [layer.num_modules for layer in self.layers]

    def forward(self, x: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
        # x: [B, ...input]; path: [L, N] long -> [B, F] features
        for layer, ids in zip(self.layers, path.tolist(), strict=True):
            if isinstance(layer, LinearModuleLayer) and x.dim() > 2:
                x = x.flatten(1)
            x = layer(x, ids)
        return x.flatten(1)

    def forward_population(self, x: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
        # x: [B, ...input] shared by all paths (or [P, B, ...]); paths: [P, L, N] -> [P, B, F]
        paths = paths.transpose(0, 1)  # [L, P, N]
        dedup = duplicate_weights(paths)  # None, or [L, P, N]
        for index, (layer, ids) in enumerate(zip(self.layers, paths.tolist(), strict=True)):
            if isinstance(layer, LinearModuleLayer) and x.dim() > 3:
                x = x.flatten(2)
            x = layer.forward_population(x, ids, None if dedup is None else dedup[index])
        return x.flatten(2)

    # --- freezing (transfer) -------------------------------------------------------------------

    def freeze(self, path: torch.Tensor) -> None:
        """Make the modules on ``path`` ([L, N] long) immutable from now on."""
        for layer, ids in zip(self.layers, path.tolist(), strict=True):
            layer.freeze_modules(ids)
        self._snapshot_frozen()

    def frozen_mask(self) -> list[torch.Tensor]:
        """Per layer, a bool [M] of the frozen modules."""
        return [layer.frozen.clone() for layer in self.layers]

    @torch.no_grad()
    def reinit_unfrozen(self) -> None:
        """Re-initialise every module that is not frozen (the rest of the library)."""
        for layer in self.layers:
            layer.reset_modules([m for m, frozen in enumerate(layer.frozen.tolist()) if not frozen])

    def guard(self, optimizer: torch.optim.Optimizer) -> torch.utils.hooks.RemovableHandle:
        """Keep ``optimizer`` from moving frozen modules: restore them after every step."""
        return optimizer.register_step_post_hook(lambda *_: self.restore_frozen())

    @torch.no_grad()
    def restore_frozen(self) -> None:
        """Write the frozen modules' saved values back into their parameters."""
        for (layer_index, name, m), saved in self._frozen_values.items():
            getattr(self.layers[layer_index], name)[m].copy_(saved)

    @torch.no_grad()
    def _snapshot_frozen(self) -> None:
        self._frozen_values = {
            (layer_index, name, m): getattr(layer, name)[m].detach().clone()
            for layer_index, layer in enumerate(self.layers)
            for m, frozen in enumerate(layer.frozen.tolist())
            if frozen
            for name in layer.parameter_kinds
        }


def _snapshot_after_load(library: PathLibrary, _incompatible_keys: object) -> None:
    library._snapshot_frozen()  # a top-level function (not a lambda) keeps the library picklable


def linear_library(
    in_features: int,
    hidden: int,
    num_layers: int,
    num_modules: int,
    last_reduce: str = "sum",
) -> PathLibrary:
    """An MLP library: ``num_layers`` layers of ``num_modules`` linear modules of ``hidden`` units.

    ``last_reduce="mean"`` averages at the last shared layer (the setting PathNet's published
    results used, according to a reimplementation that asked the authors).
    """
    if min(in_features, hidden, num_layers, num_modules) <= 0:
        raise ValueError("library sizes must be positive")
    layers = [
        LinearModuleLayer(
            num_modules,
            in_features if index == 0 else hidden,
            hidden,
            reduce=last_reduce if index == num_layers - 1 else "sum",
        )
        for index in range(num_layers)
    ]
    return PathLibrary(layers, output_size=hidden)


def conv_library(
    input_shape: tuple[int, int, int],
    conv_layers: Sequence[tuple[int, int, int]],
    num_modules: int,
    linear_units: int | None = None,
    last_reduce: str = "sum",
) -> PathLibrary:
    """A conv library for pixels: conv layers ``(channels, kernel, stride)`` then one linear layer.

    PathNet's Atari setting is ``conv_layers=[(8, 8, 4), (8, 4, 2), (8, 3, 1)]``,
    ``linear_units=50``, ``num_modules=10``.
    """
    channels, height, width = input_shape
    layers: list[ModuleLayer] = []
    for out_channels, kernel, stride in conv_layers:
        layer = Conv2dModuleLayer(num_modules, channels, out_channels, kernel, stride)
        channels, height, width = layer.output_shape(height, width)
        if height <= 0 or width <= 0:
            raise ValueError(f"input {input_shape} is too small for the conv layers {conv_layers}")
        layers.append(layer)
    output_size = channels * height * width
    if linear_units is not None:
        layers.append(LinearModuleLayer(num_modules, output_size, linear_units))
        output_size = linear_units
    layers[-1].reduce = last_reduce
    return PathLibrary(layers, output_size=output_size)
