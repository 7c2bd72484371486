"""Compositional pattern-producing networks (CPPNs) compiled to batched torch functions.

Stanley 2007 (CPPNs); Stanley, D'Ambrosio, Gauci 2009 (HyperNEAT). A CPPN is a small acyclic
graph of nodes with assorted activation functions (sin, gauss, sigmoid, ...), evolved by NEAT,
that HyperNEAT queries once per connection of a substrate to paint its weights. PyTorch-NEAT
(Uber) showed that compiling such a graph to batched tensor ops makes that cheap; here a graph
becomes one ``[Q, inputs] -> [Q, outputs]`` function over all Q queries at once: one matmul per
topological layer, activations applied to contiguous column groups of one kind each.

Semantics follow neat-python 2.0's ``FeedForwardNetwork`` exactly (this module does not import
``neat``; the tests compare against it): keys -1..-num_inputs are inputs, 0..num_outputs-1
outputs; only the outputs and their ancestors are evaluated; a node computes
``activation(bias + response * aggregation(inputs * weights))`` — a node without incoming
connections is ``activation(bias + response * aggregation([]))``, i.e. ``activation(bias)`` for
``sum`` — and the activations are neat's, including their input scaling and clamping.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# --- activations and aggregations ---------------------------------------------------------------

_SELU_LAMBDA = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717


def _sigmoid(z: Tensor) -> Tensor:
    return torch.sigmoid(torch.clamp(5.0 * z, -60.0, 60.0))


def _tanh(z: Tensor) -> Tensor:
    return torch.tanh(torch.clamp(2.5 * z, -60.0, 60.0))


def _sin(z: Tensor) -> Tensor:
    return torch.sin(torch.clamp(5.0 * z, -60.0, 60.0))


def _gauss(z: Tensor) -> Tensor:
    return torch.exp(-5.0 * torch.clamp(z, -3.4, 3.4).square())


def _elu(z: Tensor) -> Tensor:
    # exp of the clamped value: the unused branch never overflows.
    return torch.where(z > 0.0, z, torch.exp(torch.clamp(z, max=0.0)) - 1.0)


def _lelu(z: Tensor) -> Tensor:
    return torch.where(z > 0.0, z, 0.005 * z)


def _selu(z: Tensor) -> Tensor:
    negative = _SELU_LAMBDA * _SELU_ALPHA * (torch.exp(torch.clamp(z, max=0.0)) - 1.0)
    return torch.where(z > 0.0, _SELU_LAMBDA * z, negative)


def _softplus(z: Tensor) -> Tensor:
    return 0.2 * torch.log1p(torch.exp(torch.clamp(5.0 * z, -60.0, 60.0)))


def _inv(z: Tensor) -> Tensor:
    # neat returns 0.0 where 1/z raises (z == 0).
    safe = torch.where(z == 0.0, torch.ones_like(z), z)
    return torch.where(z == 0.0, torch.zeros_like(z), 1.0 / safe)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "sin": _sin,
    "gauss": _gauss,
    "relu": torch.relu,
    "elu": _elu,
    "lelu": _lelu,
    "selu": _selu,
    "softplus": _softplus,
    "identity": lambda z: z,
    "clamped": lambda z: torch.clamp(z, -1.0, 1.0),
    "inv": _inv,
    "log": lambda z: torch.log(torch.clamp(z, min=1e-7)),
    "exp": lambda z: torch.exp(torch.clamp(z, -60.0, 60.0)),
    "abs": torch.abs,
    "hat": lambda z: torch.clamp(1.0 - torch.abs(z), min=0.0),
    "square": torch.square,
    "cube": lambda z: z * z * z,
}
"""Torch versions of neat-python 2.0's ``neat.activations``, elementwise on any tensor."""


def _py_inv(z: float) -> float:
    try:
        return 1.0 / z
    except ArithmeticError:
        return 0.0


def _py_softplus(z: float) -> float:
    return 0.2 * math.log(1 + math.exp(max(-60.0, min(60.0, 5.0 * z))))


def _py_selu(z: float) -> float:
    return _SELU_LAMBDA * z if z > 0.0 else _SELU_LAMBDA * _SELU_ALPHA * (math.exp(z) - 1)


_PY_ACTIVATIONS: dict[str, Callable[[float], float]] = {
    "sigmoid": lambda z: 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, 5.0 * z)))),
    "tanh": lambda z: math.tanh(max(-60.0, min(60.0, 2.5 * z))),
    "sin": lambda z: math.sin(max(-60.0, min(60.0, 5.0 * z))),
    "gauss": lambda z: math.exp(-5.0 * max(-3.4, min(3.4, z)) ** 2),
    "relu": lambda z: z if z > 0.0 else 0.0,
    "elu": lambda z: z if z > 0.0 else math.exp(z) - 1,
    "lelu": lambda z: z if z > 0.0 else 0.005 * z,
    "selu": _py_selu,
    "softplus": _py_softplus,
    "identity": lambda z: z,
    "clamped": lambda z: max(-1.0, min(1.0, z)),
    "inv": _py_inv,
    "log": lambda z: math.log(max(1e-7, z)),
    "exp": lambda z: math.exp(max(-60.0, min(60.0, z))),
    "abs": abs,
    "hat": lambda z: max(0.0, 1 - abs(z)),
    "square": lambda z: z**2,
    "cube": lambda z: z**3,
}


def _py_median(x: list[float]) -> float:
    if not x:
        return 0.0
    if len(x) <= 2:
        return sum(x) / len(x)
    x = sorted(x)
    n = len(x)
    return x[n // 2] if n % 2 else (x[n // 2 - 1] + x[n // 2]) / 2.0


_PY_AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "product": lambda x: math.prod(x, start=1.0),
    "max": lambda x: max(x) if x else 0.0,
    "min": lambda x: min(x) if x else 0.0,
    "maxabs": lambda x: max(x, key=abs) if x else 0.0,
    "mean": lambda x: sum(x) / len(x) if x else 0.0,
    "median": _py_median,
}

AGGREGATIONS: tuple[str, ...] = tuple(_PY_AGGREGATIONS)
"""neat-python's aggregation functions (an empty input gives 0, or 1 for ``product``)."""

CPPN_ACTIVATIONS: tuple[str, ...] = ("sin", "gauss", "sigmoid", "tanh", "abs", "identity")
"""The usual CPPN activation set (neat-python's CPPN examples, HyperNEAT)."""


# --- the graph ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CPPNNode:
    """One non-input node: ``activation(bias + response * aggregation(w_i * x_i))``."""

    key: int
    """neat's node key: 0..num_outputs-1 for outputs, other non-negative keys for hidden nodes."""
    activation: str
    """A key of :data:`ACTIVATIONS`."""
    bias: float
    response: float
    aggregation: str = "sum"
    """A key of :data:`AGGREGATIONS`."""


@dataclass(frozen=True)
class CPPNGraph:
    """A CPPN as plain data (picklable, comparable): nodes and *enabled* connections.

    Inputs are keys -1..-num_inputs (not listed in ``nodes``), outputs 0..num_outputs-1.
    Connections ``(source, target, weight)`` keep the genome's order (neat sums in that order).
    """

    num_inputs: int
    num_outputs: int
    nodes: tuple[CPPNNode, ...]
    connections: tuple[tuple[int, int, float], ...]

    def __post_init__(self) -> None:
        if self.num_inputs <= 0 or self.num_outputs <= 0:
            raise ValueError("a CPPN needs at least one input and one output")
        keys = [node.key for node in self.nodes]
        if len(set(keys)) != len(keys) or any(key < 0 for key in keys):
            raise ValueError(f"CPPN node keys must be distinct and non-negative, got {keys}")
        if missing := set(range(self.num_outputs)) - set(keys):
            raise ValueError(f"CPPN output nodes {sorted(missing)} are missing")
        for node in self.nodes:
            if node.activation not in ACTIVATIONS:
                raise ValueError(f"unknown CPPN activation {node.activation!r}")
            if node.aggregation not in _PY_AGGREGATIONS:
                raise ValueError(f"unknown CPPN aggregation {node.aggregation!r}")
        sources = set(keys) | set(range(-self.num_inputs, 0))
        for source, target, _ in self.connections:
            if source not in sources or target not in keys:
                raise ValueError(f"CPPN connection {source}->{target} joins unknown nodes")
        if len({(s, t) for s, t, _ in self.connections}) != len(self.connections):
            raise ValueError("CPPN connections must be distinct")

    @property
    def num_nodes(self) -> int:
        """Non-input nodes (outputs and hidden), as neat counts them."""
        return len(self.nodes)

    @property
    def num_connections(self) -> int:
        return len(self.connections)

    @classmethod
    def from_genome(cls, genome: Any, num_inputs: int, num_outputs: int) -> CPPNGraph:
        """Read a neat-python ``DefaultGenome`` (duck typed; disabled connections skipped)."""
        nodes = tuple(
            CPPNNode(
                int(key),
                str(gene.activation),
                float(gene.bias),
                float(gene.response),
                str(gene.aggregation),
            )  # fmt: skip
            for key, gene in genome.nodes.items()
        )
        connections = tuple(
            (int(source), int(target), float(gene.weight))
            for (source, target), gene in genome.connections.items()
            if gene.enabled
        )
        return cls(num_inputs, num_outputs, nodes, connections)

    def to_dict(self) -> dict[str, Any]:
        """Plain ints, floats, strings and lists (a ``weights_only`` checkpoint can hold it)."""
        return {
            "num_inputs": self.num_inputs,
            "num_outputs": self.num_outputs,
            "nodes": [[n.key, n.activation, n.bias, n.response, n.aggregation] for n in self.nodes],
            "connections": [list(c) for c in self.connections],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CPPNGraph:
        return cls(
            int(data["num_inputs"]),
            int(data["num_outputs"]),
            tuple(CPPNNode(int(k), a, float(b), float(r), g) for k, a, b, r, g in data["nodes"]),
            tuple((int(s), int(t), float(w)) for s, t, w in data["connections"]),
        )


def evaluation_layers(graph: CPPNGraph) -> list[list[int]]:
    """The nodes neat evaluates (outputs and their ancestors), in topological layers.

    A node's layer is 1 + the deepest layer among its sources (inputs are layer 0), so each
    layer depends only on earlier ones. Within a layer, node order is the graph's.
    """
    inputs = set(range(-graph.num_inputs, 0))
    sources: dict[int, list[int]] = {node.key: [] for node in graph.nodes}
    for source, target, _ in graph.connections:
        sources[target].append(source)
    required = set(range(graph.num_outputs))
    frontier = list(required)
    while frontier:
        for source in sources[frontier.pop()]:
            if source not in inputs and source not in required:
                required.add(source)
                frontier.append(source)
    depth: dict[int, int] = dict.fromkeys(inputs, 0)
    pending = [node.key for node in graph.nodes if node.key in required]
    while pending:
        ready = [key for key in pending if all(s in depth for s in sources[key])]
        if not ready:
            raise ValueError(f"the CPPN has a cycle among nodes {sorted(pending)}")
        for key in ready:
            depth[key] = 1 + max((depth[s] for s in sources[key]), default=0)
        pending = [key for key in pending if key not in depth]
    layers: list[list[int]] = [[] for _ in range(max(depth.values()))]
    for node in graph.nodes:
        if node.key in required:
            layers[depth[node.key] - 1].append(node.key)
    return [layer for layer in layers if layer]


def reference_cppn(graph: CPPNGraph, query: Sequence[float]) -> list[float]:
    """Evaluate ``graph`` at one query, node by node and connection by connection.

    Pure Python, in float64, as neat-python's ``FeedForwardNetwork.activate`` does (the node
    order and each node's incoming connections are worked out once per graph, as neat's
    ``create`` does): the test reference for :func:`compile_cppn` and the benchmarks' slow path.
    """
    if len(query) != graph.num_inputs:
        raise ValueError(f"expected {graph.num_inputs} inputs, got {len(query)}")
    values = {-1 - index: float(value) for index, value in enumerate(query)}
    for key, activation, aggregation, bias, response, links in _node_evals(graph):
        total = aggregation([values[source] * weight for source, weight in links])
        values[key] = activation(bias + response * total)
    return [values[key] for key in range(graph.num_outputs)]


@functools.lru_cache(maxsize=64)
def _node_evals(graph: CPPNGraph) -> list[tuple[int, Callable, Callable, float, float, list]]:
    """neat's ``node_evals``: (key, activation, aggregation, bias, response, [(source, w)])."""
    nodes = {node.key: node for node in graph.nodes}
    evals = []
    for layer in evaluation_layers(graph):
        for key in layer:
            node = nodes[key]
            links = [
                (source, weight) for source, target, weight in graph.connections if target == key
            ]
            activation = _PY_ACTIVATIONS[node.activation]
            aggregation = _PY_AGGREGATIONS[node.aggregation]
            evals.append((key, activation, aggregation, node.bias, node.response, links))
    return evals


def random_cppn(
    num_inputs: int,
    num_outputs: int,
    rng: random.Random,
    activations: Sequence[str] = CPPN_ACTIVATIONS,
    hidden: int = 0,
) -> CPPNGraph:
    """A random CPPN: every input connected to every output, weights and biases ~ N(0, 1),
    response 1, activations drawn from ``activations`` (neat's "full_direct" start).

    ``hidden > 0`` adds that many hidden nodes, each fed by up to three random earlier nodes
    (inputs or hidden) and feeding every output (a deeper graph for tests and benchmarks).
    """
    if num_inputs <= 0 or num_outputs <= 0 or hidden < 0:
        raise ValueError("a CPPN needs positive inputs/outputs and non-negative hidden nodes")
    unknown = [name for name in activations if name not in ACTIVATIONS]
    if not activations or unknown:
        raise ValueError(f"activations must be a non-empty subset of ACTIVATIONS, got {unknown}")
    keys = list(range(num_outputs + hidden))
    nodes = tuple(CPPNNode(key, rng.choice(activations), rng.gauss(0.0, 1.0), 1.0) for key in keys)
    connections = [
        (-1 - i, o, rng.gauss(0.0, 1.0)) for o in range(num_outputs) for i in range(num_inputs)
    ]
    earlier = [-1 - i for i in range(num_inputs)]
    for h in range(num_outputs, num_outputs + hidden):
        for source in rng.sample(earlier, min(3, len(earlier))):
            connections.append((source, h, rng.gauss(0.0, 1.0)))
        connections.extend((h, o, rng.gauss(0.0, 1.0)) for o in range(num_outputs))
        earlier.append(h)
    return CPPNGraph(num_inputs, num_outputs, nodes, tuple(connections))


# --- compilation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """Contiguous columns ``[start, stop)`` of one layer sharing an aggregation or activation."""

    kind: str
    start: int
    stop: int

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)


@dataclass(frozen=True)
class _Layer:
    """One topological layer: its nodes fill value columns ``[column, column + n)``."""

    column: int
    bias: list[float]
    response: list[float]
    sum_width: int
    """The first ``sum_width`` nodes aggregate by sum: one ``addmm`` over earlier columns."""
    sum_weights: list[tuple[int, int, float]]
    """(earlier column, node index in layer, weight * response) for the sum nodes."""
    other: list[tuple[_Group, list[list[tuple[int, float]]]]]
    """Non-sum aggregations: per group, per node, its (earlier column, weight) inputs."""
    activations: list[_Group]


class CompiledCPPN:
    """A CPPN as a batched torch function: ``cppn(queries [Q, num_inputs]) -> [Q, num_outputs]``.

    Values live in one ``[Q, num_inputs + evaluated nodes]`` buffer, inputs first, then each
    topological layer's nodes; within a layer the nodes are sorted by (aggregation, activation)
    so that every aggregation and activation applies to one contiguous column slice. A layer
    costs one ``addmm`` (sum nodes, response folded into the weights) plus one op per distinct
    activation; other aggregations gather padded ``[Q, n, max fan-in]`` inputs. Computes in the
    queries' dtype and device (float32 by default; float64 for exact comparisons). Tensors are
    built lazily per (device, dtype) and dropped on pickling: only the graph crosses processes.
    """

    def __init__(self, graph: CPPNGraph) -> None:
        self.graph = graph
        self._build_plan()

    def __getstate__(self) -> dict[str, Any]:
        return {"graph": self.graph}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.graph = state["graph"]
        self._build_plan()

    def __repr__(self) -> str:
        g, layers = self.graph, len(self._layers)
        return (
            f"CompiledCPPN({g.num_nodes} nodes, {g.num_connections} connections, {layers} layers)"
        )

    def _build_plan(self) -> None:
        graph = self.graph
        nodes = {node.key: node for node in graph.nodes}
        column = {-1 - i: i for i in range(graph.num_inputs)}
        incoming: dict[int, list[tuple[int, float]]] = {key: [] for key in nodes}
        for source, target, weight in graph.connections:
            incoming[target].append((source, weight))
        self._layers: list[_Layer] = []
        next_column = graph.num_inputs
        for layer_keys in evaluation_layers(graph):
            # Sum nodes first, then runs of equal aggregation and activation: contiguous groups.
            ordered = sorted(layer_keys, key=lambda k: _sort_key(nodes[k]))
            start = next_column
            for index, key in enumerate(ordered):
                column[key] = start + index
            next_column += len(ordered)
            sum_width = sum(nodes[k].aggregation == "sum" for k in ordered)
            sum_weights = [
                (column[source], index, weight * nodes[key].response)
                for index, key in enumerate(ordered[:sum_width])
                for source, weight in incoming[key]
            ]
            other = [
                (group, [[(column[s], w) for s, w in incoming[k]] for k in ordered[group.slice]])
                for group in _groups([nodes[k].aggregation for k in ordered])
                if group.kind != "sum"
            ]
            self._layers.append(
                _Layer(
                    column=start,
                    bias=[nodes[k].bias for k in ordered],
                    response=[nodes[k].response for k in ordered],
                    sum_width=sum_width,
                    sum_weights=sum_weights,
                    other=other,
                    activations=_groups([nodes[k].activation for k in ordered]),
                )
            )
        self._width = next_column
        self._outputs = [column[key] for key in range(graph.num_outputs)]
        self._tensors: dict[
            tuple[torch.device, torch.dtype], tuple[list[dict[str, Tensor]], Tensor]
        ] = {}

    def _layer_tensors(
        self, device: torch.device, dtype: torch.dtype
    ) -> tuple[list[dict[str, Tensor]], Tensor]:
        cached = self._tensors.get((device, dtype))
        if cached is not None:
            return cached
        built = []
        for layer in self._layers:
            tensors = {
                "bias": torch.tensor(layer.bias, dtype=dtype, device=device),
                "response": torch.tensor(layer.response, dtype=dtype, device=device),
            }
            weights = torch.zeros(layer.column, layer.sum_width, dtype=dtype)  # [earlier, n_sum]
            if layer.sum_weights:
                rows, cols, values = zip(*layer.sum_weights, strict=True)
                weights[list(rows), list(cols)] = torch.tensor(values, dtype=dtype)
            tensors["sum"] = weights.to(device)
            for number, (_, inputs) in enumerate(layer.other):
                fan_in = max(1, max(len(row) for row in inputs))
                index = torch.zeros(len(inputs), fan_in, dtype=torch.long)  # [g, D]
                weight = torch.zeros(len(inputs), fan_in, dtype=dtype)
                mask = torch.zeros(len(inputs), fan_in, dtype=torch.bool)
                for row, pairs in enumerate(inputs):
                    if pairs:
                        sources, ws = zip(*pairs, strict=True)
                        index[row, : len(pairs)] = torch.tensor(sources)
                        weight[row, : len(pairs)] = torch.tensor(ws, dtype=dtype)
                        mask[row, : len(pairs)] = True
                tensors[f"index{number}"] = index.to(device)
                tensors[f"weight{number}"] = weight.to(device)
                tensors[f"mask{number}"] = mask.to(device)
            built.append(tensors)
        outputs = torch.tensor(self._outputs, device=device)
        self._tensors[(device, dtype)] = (built, outputs)
        return built, outputs

    def __call__(self, queries: Tensor) -> Tensor:
        # queries: [Q, num_inputs] -> [Q, num_outputs], all queries at once
        if queries.dim() != 2 or queries.shape[1] != self.graph.num_inputs:
            raise ValueError(
                f"CPPN queries must be [Q, {self.graph.num_inputs}], got {list(queries.shape)}"
            )
        dtype = queries.dtype if queries.is_floating_point() else torch.get_default_dtype()
        layers, outputs = self._layer_tensors(queries.device, dtype)
        values = queries.new_empty(queries.shape[0], self._width, dtype=dtype)  # [Q, columns]
        values[:, : self.graph.num_inputs] = queries
        for layer, tensors in zip(self._layers, layers, strict=True):
            start = layer.column
            earlier = values[:, :start]  # [Q, earlier columns]
            parts = []  # pre-activations of the layer's aggregation groups, [Q, width] each
            if layer.sum_width:
                bias = tensors["bias"][: layer.sum_width]
                parts.append(torch.addmm(bias, earlier, tensors["sum"]))
            for number, (group, _) in enumerate(layer.other):
                gathered = earlier[:, tensors[f"index{number}"]] * tensors[f"weight{number}"]
                total = _aggregate(group.kind, gathered, tensors[f"mask{number}"])  # [Q, g]
                bias, response = tensors["bias"][group.slice], tensors["response"][group.slice]
                parts.append(torch.addcmul(bias, total, response))
            z = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # [Q, n]
            for group in layer.activations:
                columns = slice(start + group.start, start + group.stop)
                values[:, columns] = ACTIVATIONS[group.kind](z[:, group.slice])
        return values.index_select(1, outputs)


def compile_cppn(graph: CPPNGraph) -> CompiledCPPN:
    """``graph`` as a batched, picklable torch function (see :class:`CompiledCPPN`)."""
    return CompiledCPPN(graph)


def _sort_key(node: CPPNNode) -> tuple[bool, str, str]:
    return node.aggregation != "sum", node.aggregation, node.activation


def _groups(kinds: list[str]) -> list[_Group]:
    """Runs of equal consecutive ``kinds`` as contiguous groups."""
    groups: list[_Group] = []
    for index, kind in enumerate(kinds):
        if groups and groups[-1].kind == kind:
            groups[-1] = _Group(kind, groups[-1].start, index + 1)
        else:
            groups.append(_Group(kind, index, index + 1))
    return groups


def _aggregate(kind: str, x: Tensor, mask: Tensor) -> Tensor:
    """neat's non-sum aggregations over padded inputs.

    x: [Q, g, D] weighted inputs; mask: [g, D] bool, True at real inputs -> [Q, g]
    """
    count = mask.sum(-1)  # [g]
    empty = count == 0
    if kind == "product":
        return torch.where(mask, x, torch.ones_like(x)).prod(-1)
    if kind == "mean":
        return torch.where(mask, x, torch.zeros_like(x)).sum(-1) / count.clamp(min=1)
    if kind in ("max", "min"):
        fill = -math.inf if kind == "max" else math.inf
        padded = torch.where(mask, x, torch.full_like(x, fill))
        reduced = padded.amax(-1) if kind == "max" else padded.amin(-1)
        return torch.where(empty, torch.zeros_like(reduced), reduced)
    if kind == "maxabs":
        # The first input of largest magnitude (Python's max(key=abs) keeps the first).
        pick = torch.where(mask, x.abs(), torch.full_like(x, -1.0)).argmax(-1, keepdim=True)
        chosen = x.gather(-1, pick).squeeze(-1)
        return torch.where(empty, torch.zeros_like(chosen), chosen)
    if kind == "median":
        ordered = torch.where(mask, x, torch.full_like(x, math.inf)).sort(-1).values
        low = ((count - 1).clamp(min=0) // 2).expand(x.shape[0], -1).unsqueeze(-1)  # [Q, g, 1]
        high = (count // 2).clamp(max=x.shape[-1] - 1).expand(x.shape[0], -1).unsqueeze(-1)
        middle = (ordered.gather(-1, low) + ordered.gather(-1, high)).squeeze(-1) / 2.0
        return torch.where(empty, torch.zeros_like(middle), middle)
    raise ValueError(f"unknown aggregation {kind!r}")
