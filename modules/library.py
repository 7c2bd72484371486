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

from collections.abc import Callable, Sequence

import torch
from torch import nn

from pathevo.modules.gating import AuxLosses
from pathevo.modules.layers import (
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
        self._frozen_values: dict[tuple[int, str], torch.Tensor] = {}
        self._aux_losses = AuxLosses()
        self.register_load_state_dict_post_hook(_snapshot_after_load)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def modules_per_layer(self) -> list[int]:
        return [layer.num_modules for layer in self.layers]

    def forward(self, x: torch.Tensor, path: torch.Tensor, task: str | None = None) -> torch.Tensor:
        # x: [B, ...input]; path: [L, N] long -> [B, F] features
        aux = None
        for layer, ids in zip(self.layers, path.tolist(), strict=True):
            if layer.flat_input and x.dim() > 2:
                x = x.flatten(1)
            x, layer_aux = layer.forward_with_aux(x, ids, task=task)
            aux = _add(aux, layer_aux)
        self._aux_losses.add(aux)
        return x.flatten(1)

    def forward_population(
        self, x: torch.Tensor, paths: torch.Tensor, task: str | None = None
    ) -> torch.Tensor:
        # x: [B, ...input] shared by all paths (or [P, B, ...]); paths: [P, L, N] -> [P, B, F]
        paths = paths.transpose(0, 1)  # [L, P, N]
        dedup = duplicate_weights(paths)  # None, or [L, P, N]
        if dedup is not None:  # paths may sit on the CPU while the library is on a GPU
            dedup = dedup.to(x.device)
        aux = None
        for index, (layer, ids) in enumerate(zip(self.layers, paths.tolist(), strict=True)):
            if layer.flat_input and x.dim() > 3:
                x = x.flatten(2)
            weights = None if dedup is None else dedup[index]
            x, layer_aux = layer.forward_population_with_aux(x, ids, weights, task=task)
            aux = _add(aux, layer_aux)
        self._aux_losses.add(aux)
        return x.flatten(2)

    # --- auxiliary losses (MoE balancing) ------------------------------------------------------

    def take_aux_loss(self) -> torch.Tensor | None:
        """The mean auxiliary loss of the forward passes since the last call (with autograd
        enabled), then forget them; ``None`` if no layer has one (plain PathNet libraries).

        Trainers add it to their loss: supervised path training after each minibatch, A3C after
        the pass whose logits the loss uses.
        """
        return self._aux_losses.take()

    # --- per-task parts and freezing (transfer) ------------------------------------------------

    def add_task(self, task: str) -> None:
        """Create ``task``'s own parts in every layer (an MoE layer's gate); kept if present."""
        for layer in self.layers:
            layer.add_task(task)

    def path_parameters(self, path: torch.Tensor, task: str | None = None) -> list[nn.Parameter]:
        """What ``path`` ([L, N]) trains for ``task``, layer by layer, in a fixed order: O(N)."""
        return [
            param
            for layer, ids in zip(self.layers, path.tolist(), strict=True)
            for param in layer.path_parameters(ids, task)
        ]

    def freeze(self, path: torch.Tensor, task: str | None = None) -> None:
        """Make the modules on ``path`` ([L, N] long), and ``task``'s gates, immutable."""
        for layer, ids in zip(self.layers, path.tolist(), strict=True):
            layer.freeze(ids, task)
        self._snapshot_frozen()

    def frozen_mask(self) -> list[torch.Tensor]:
        """Per layer, a bool [M] of the frozen modules."""
        return [layer.frozen.clone() for layer in self.layers]

    @torch.no_grad()
    def reinit_unfrozen(self) -> None:
        """Re-initialise every module (and per-task part) that is not frozen."""
        for layer in self.layers:
            layer.reset_unfrozen()

    def grow(self, layer: int, extra: int) -> None:
        """Add ``extra`` fresh modules to layer ``layer`` (frozen modules keep their values bit
        for bit). The layer's parameters are new objects: build optimisers after growing."""
        self.layers[layer].grow(extra)
        self._snapshot_frozen()

    def guard(self, optimizer: torch.optim.Optimizer) -> torch.utils.hooks.RemovableHandle:
        """Keep ``optimizer`` from moving frozen modules: restore them after every step."""
        return optimizer.register_step_post_hook(lambda *_: self.restore_frozen())

    @torch.no_grad()
    def restore_frozen(self) -> None:
        """Write the frozen parameters' saved values back."""
        for (layer_index, name), saved in self._frozen_values.items():
            self.layers[layer_index].get_parameter(name).copy_(saved)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> nn.Module:
        # .to(device) moves the frozen modules' saved values along: the guard's copy_ then
        # stays on the device instead of crossing from the CPU after every step.
        result = super()._apply(fn, recurse)
        self._frozen_values = {key: fn(saved) for key, saved in self._frozen_values.items()}
        return result

    @torch.no_grad()
    def _snapshot_frozen(self) -> None:
        self._frozen_values = {
            (layer_index, name): layer.get_parameter(name).detach().clone()
            for layer_index, layer in enumerate(self.layers)
            for name in layer.frozen_parameter_names()
        }


def _add(total: torch.Tensor | None, term: torch.Tensor | None) -> torch.Tensor | None:
    if term is None:
        return total
    return term if total is None else total + term


def _snapshot_after_load(library: PathLibrary, _incompatible_keys: object) -> None:
    library._snapshot_frozen()  # a top-level function (not a lambda) keeps the library picklable


LayerFactory = Callable[[int, int, int, str], ModuleLayer]
"""``factory(num_modules, in_features, out_features, reduce)`` -> a flat-input layer: how a
library builder makes its last layer (linear modules by default; an MoE layer, …)."""


def linear_library(
    in_features: int,
    hidden: int,
    num_layers: int,
    num_modules: int,
    last_reduce: str = "sum",
    last_layer: LayerFactory = LinearModuleLayer,
) -> PathLibrary:
    """An MLP library: ``num_layers`` layers of ``num_modules`` linear modules of ``hidden`` units.

    ``last_reduce="mean"`` averages at the last shared layer (the setting PathNet's published
    results used, according to a reimplementation that asked the authors); ``last_layer``
    makes the last layer (e.g. :func:`pathevo.modules.moe.moe_layer_factory`).
    """
    if min(in_features, hidden, num_layers, num_modules) <= 0:
        raise ValueError("library sizes must be positive")
    layers = [
        LinearModuleLayer(num_modules, in_features if index == 0 else hidden, hidden)
        for index in range(num_layers - 1)
    ]
    last_in = in_features if num_layers == 1 else hidden
    layers.append(last_layer(num_modules, last_in, hidden, last_reduce))
    return PathLibrary(layers, output_size=hidden)


def conv_library(
    input_shape: tuple[int, int, int],
    conv_layers: Sequence[tuple[int, int, int]],
    num_modules: int,
    linear_units: int | None = None,
    last_reduce: str = "sum",
    last_layer: LayerFactory = LinearModuleLayer,
) -> PathLibrary:
    """A conv library for pixels: conv layers ``(channels, kernel, stride)`` then one flat layer
    of ``linear_units`` made by ``last_layer`` (linear modules by default).

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
        layers.append(last_layer(num_modules, output_size, linear_units, last_reduce))
        output_size = linear_units
    else:
        layers[-1].reduce = last_reduce
    return PathLibrary(layers, output_size=output_size)
