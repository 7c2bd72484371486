"""Path layers whose module weights are painted by CPPNs: one CPPN per module (HyperNEAT).

Stanley, D'Ambrosio, Gauci 2009 (HyperNEAT); Fernando et al. 2017 (PathNet). Each module of a
:class:`CPPNLinearLayer` / :class:`CPPNConv2dLayer` keeps a CPPN graph; its weights are that
CPPN's expressed outputs over the module's substrate (:mod:`pathevo.modules.substrate`). Only weight
*generation* differs from :class:`~pathevo.modules.layers.LinearModuleLayer` /
:class:`~pathevo.modules.layers.Conv2dModuleLayer`: the generated values sit in the same per-module
parameters, so a path through such a layer runs, trains by gradient, freezes (and is guarded)
exactly as through any other layer. :meth:`reset_modules` (hence ``reset_unfrozen``) repaints
modules from their CPPNs; :meth:`set_cppn` gives a module a new CPPN (an evolved genome) and
refuses a frozen one. The graphs are plain data saved in the state dict's extra state.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from pathevo.modules.cppn import CompiledCPPN, CPPNGraph, compile_cppn, random_cppn
from pathevo.modules.layers import Conv2dModuleLayer, LinearModuleLayer
from pathevo.modules.substrate import QUERY_SIZE, conv_weights, grid_positions, linear_weights


class _CPPNModules:
    """What both CPPN layer kinds add to a module layer: a CPPN per module and repainting.

    Module m starts with ``random_cppn(QUERY_SIZE, 2, random.Random(seed + m))``, modules
    added by :meth:`~pathevo.modules.layers.ModuleLayer.grow` too.
    """

    num_modules: int
    frozen: Tensor
    weights: nn.ParameterList
    biases: nn.ParameterList
    threshold: float
    max_weight: float
    cppn_seed: int

    def _init_cppns(self, threshold: float, max_weight: float, seed: int) -> None:
        if not 0.0 <= threshold < 1.0 or max_weight <= 0.0:
            raise ValueError(
                f"need 0 <= threshold < 1 and max_weight > 0, got {threshold}, {max_weight}"
            )
        self.threshold, self.max_weight, self.cppn_seed = threshold, max_weight, seed
        self.cppns: list[CPPNGraph] = []
        self.output_pairs: list[int] = []
        self._compiled: list[CompiledCPPN] = []
        self._add_cppns(0, self.num_modules)
        self.reset_modules(range(self.num_modules))

    def _add_cppns(self, first: int, count: int) -> None:
        """Module m's starting CPPN, for m in ``first .. first + count - 1``."""
        for m in range(first, first + count):
            self.cppns.append(random_cppn(QUERY_SIZE, 2, random.Random(self.cppn_seed + m)))
            self.output_pairs.append(0)
            self._compiled.append(compile_cppn(self.cppns[-1]))

    def grow_state(self, old: int, extra: int) -> None:
        """The new modules' starting CPPNs, drawn as a layer of ``old + extra`` modules would
        draw them; :meth:`grow` then paints the modules from them."""
        self._add_cppns(old, extra)

    def _paint(self, cppn: CompiledCPPN, output_pair: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def generated(self, module_id: int) -> tuple[Tensor, Tensor]:
        """Module ``module_id``'s weights and biases as its CPPN paints them (not written)."""
        return self._paint(self._compiled[module_id], self.output_pairs[module_id])

    @torch.no_grad()
    def reset_modules(self, module_ids: Iterable[int]) -> None:
        """Repaint the modules ``module_ids`` from their CPPNs."""
        if "_compiled" not in self.__dict__:
            return  # the base layer's constructor: CPPNs do not exist yet, _init_cppns paints
        for m in module_ids:
            weight, bias = self.generated(m)
            self.weights[m].copy_(weight)
            self.biases[m].copy_(bias)

    def set_cppn(self, module_id: int, graph: CPPNGraph, output_pair: int = 0) -> None:
        """Give module ``module_id`` the CPPN ``graph`` (its outputs ``2*output_pair`` and
        ``2*output_pair + 1`` paint weights and biases) and repaint it; a frozen module refuses."""
        if not 0 <= module_id < self.num_modules:
            raise ValueError(f"module {module_id} is not in a layer of {self.num_modules}")
        if bool(self.frozen[module_id]):
            raise ValueError(f"module {module_id} is frozen: its CPPN cannot change")
        if graph.num_inputs != QUERY_SIZE:
            raise ValueError(f"a substrate CPPN takes {QUERY_SIZE} inputs, got {graph.num_inputs}")
        if output_pair < 0 or graph.num_outputs < 2 * output_pair + 2:
            raise ValueError(f"output pair {output_pair} needs {2 * output_pair + 2} CPPN outputs")
        self.cppns[module_id] = graph
        self.output_pairs[module_id] = output_pair
        self._compiled[module_id] = compile_cppn(graph)
        self.reset_modules([module_id])

    def get_extra_state(self) -> dict[str, Any]:
        # Plain containers: a checkpoint stays loadable with torch.load(weights_only=True).
        return {
            "cppns": [graph.to_dict() for graph in self.cppns],
            "output_pairs": list(self.output_pairs),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        # Runs after the parameters are loaded: restore the graphs, keep the loaded weights
        # (they may have been trained since they were painted).
        if len(state["cppns"]) != self.num_modules:
            raise ValueError(f"{len(state['cppns'])} saved CPPNs for {self.num_modules} modules")
        self.cppns = [CPPNGraph.from_dict(data) for data in state["cppns"]]
        self.output_pairs = [int(pair) for pair in state["output_pairs"]]
        self._compiled = [compile_cppn(graph) for graph in self.cppns]


class CPPNLinearLayer(_CPPNModules, LinearModuleLayer):
    """M linear+ReLU modules (as :class:`LinearModuleLayer`) painted by a CPPN each.

    Substrate: inputs at ``grid_positions(in_shape)`` (default a line of ``in_features``; pass
    ``(c, h, w)`` for flattened conv features), outputs at ``grid_positions(out_shape)``.
    """

    def __init__(
        self,
        num_modules: int,
        in_features: int,
        out_features: int,
        reduce: str = "sum",
        activation: bool = True,
        *,
        threshold: float = 0.2,
        max_weight: float = 3.0,
        seed: int = 0,
        in_shape: tuple[int, ...] | None = None,
        out_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(num_modules, in_features, out_features, reduce, activation)
        self.in_shape = (in_features,) if in_shape is None else tuple(in_shape)
        self.out_shape = (out_features,) if out_shape is None else tuple(out_shape)
        for shape, size in ((self.in_shape, in_features), (self.out_shape, out_features)):
            if torch.Size(shape).numel() != size:
                raise ValueError(f"substrate shape {shape} does not hold {size} neurons")
        self._init_cppns(threshold, max_weight, seed)

    def _paint(self, cppn: CompiledCPPN, output_pair: int) -> tuple[Tensor, Tensor]:
        device = self.weights[0].device
        src = grid_positions(self.in_shape, device)  # [in, 3]
        dst = grid_positions(self.out_shape, device)  # [out, 3]
        return linear_weights(cppn, src, dst, output_pair, self.threshold, self.max_weight)


class CPPNConv2dLayer(_CPPNModules, Conv2dModuleLayer):
    """M conv+ReLU modules (as :class:`Conv2dModuleLayer`) painted by a CPPN each over their
    kernels (:func:`pathevo.modules.substrate.conv_queries`)."""

    def __init__(
        self,
        num_modules: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        reduce: str = "sum",
        *,
        threshold: float = 0.2,
        max_weight: float = 3.0,
        seed: int = 0,
    ) -> None:
        super().__init__(num_modules, in_channels, out_channels, kernel_size, stride, reduce)
        self._init_cppns(threshold, max_weight, seed)

    def _paint(self, cppn: CompiledCPPN, output_pair: int) -> tuple[Tensor, Tensor]:
        return conv_weights(
            cppn, self.in_channels, self.out_channels, self.kernel_size, output_pair,
            self.threshold, self.max_weight, self.weights[0].device,
        )  # fmt: skip


def cppn_layer_factory(
    threshold: float = 0.2, max_weight: float | None = None, seed: int = 0
) -> functools.partial[CPPNLinearLayer]:
    """A :data:`pathevo.modules.library.LayerFactory` for CPPN-painted linear layers (a
    ``partial``, so libraries that keep it stay picklable).

    ``max_weight=None`` scales the expressed weights to the layer's fan-in,
    ``sqrt(3 / in_features)`` (the bound of ``nn.Linear``'s weights times √3): a library trained
    by gradient does not learn from HyperNEAT's fixed 3.0 on a wide input (binary digits' 784
    inputs: task A not learned in 40 generations; scaled: 7 generations, plain linear modules 6).
    """
    return functools.partial(
        _library_cppn_layer, threshold=threshold, max_weight=max_weight, seed=seed
    )


def _library_cppn_layer(
    num_modules: int,
    in_features: int,
    out_features: int,
    reduce: str,
    *,
    threshold: float,
    max_weight: float | None,
    seed: int,
) -> CPPNLinearLayer:
    if max_weight is None:
        max_weight = math.sqrt(3.0 / in_features)
    return CPPNLinearLayer(
        num_modules, in_features, out_features, reduce,
        threshold=threshold, max_weight=max_weight, seed=seed,
    )  # fmt: skip
