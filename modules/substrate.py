"""HyperNEAT substrates: neuron coordinates, CPPN queries, and weight expression.

Stanley, D'Ambrosio, Gauci 2009 (HyperNEAT); Hausknecht et al. 2014 (HyperNEAT for Atari). A
substrate places every neuron of a layer in [-1, 1]^3; the weight of a connection is a CPPN's
output at the query (source position, target position, distance). A conv module's substrate is
its kernel: the source of weight [o, i, ky, kx] sits at (kernel dx, kernel dy, input channel),
its target at (0, 0, output channel), so one CPPN paints every filter of the module.

All queries of a layer are built by broadcasting (no Python loop per connection) and evaluated
by one call of a compiled CPPN (:func:`pathevo.modules.cppn.compile_cppn`), so generating an Atari
first conv layer's weights (16 x 4 x 8 x 8) is a handful of tensor ops.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

QUERY_SIZE = 7
"""A query is (x1, y1, z1, x2, y2, z2, d): source position, target position, their distance."""

CPPNFunction = Callable[[Tensor], Tensor]
"""``cppn(queries [Q, QUERY_SIZE]) -> [Q, outputs]``, e.g. a
:class:`pathevo.modules.cppn.CompiledCPPN`."""


def axis(n: int, device: torch.device | str | None = None) -> Tensor:
    """n evenly spaced coordinates in [-1, 1] (a single one sits at 0): [n]."""
    if n <= 0:
        raise ValueError(f"an axis needs at least one position, got {n}")
    if n == 1:
        return torch.zeros(1, device=device)
    return torch.linspace(-1.0, 1.0, n, device=device)


def grid_positions(shape: tuple[int, ...], device: torch.device | str | None = None) -> Tensor:
    """Neuron positions of a layer of ``shape``, in row-major (flatten) order: [prod(shape), 3].

    ``(n,)``: a line along x; ``(h, w)``: a grid, x across the w columns, y down the h rows;
    ``(c, h, w)``: that grid once per channel, z the channel coordinate.
    """
    if not 1 <= len(shape) <= 3:
        raise ValueError(f"a substrate layer has shape (n,), (h, w) or (c, h, w), got {shape}")
    c, h, w = (1,) * (3 - len(shape)) + tuple(shape)
    z, y, x = torch.meshgrid(axis(c, device), axis(h, device), axis(w, device), indexing="ij")
    return torch.stack([x, y, z], dim=-1).reshape(c * h * w, 3)  # [C*H*W, 3]


def _queries(source: Tensor, target: Tensor) -> Tensor:
    # source, target: [..., 3] broadcastable -> [..., 7]
    source, target = torch.broadcast_tensors(source, target)
    distance = torch.linalg.vector_norm(target - source, dim=-1, keepdim=True)
    return torch.cat([source, target, distance], dim=-1)


def connection_queries(src: Tensor, dst: Tensor) -> Tensor:
    """Queries of every connection src -> dst, destination-major.

    src: [I, 3], dst: [O, 3] -> [O*I, 7]; row o*I + i is the connection i -> o, so a CPPN's
    output column reshapes to a ``[O, I]`` weight matrix.
    """
    return _queries(src.unsqueeze(0), dst.unsqueeze(1)).reshape(-1, QUERY_SIZE)  # [O*I, 7]


def bias_queries(dst: Tensor) -> Tensor:
    """Queries of the biases of neurons ``dst`` ([O, 3]): the source is the origin -> [O, 7]."""
    return _queries(torch.zeros_like(dst), dst)


def conv_queries(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    device: torch.device | str | None = None,
) -> Tensor:
    """Queries of every weight of a conv module, in the order of a ``[C_out, C_in, k, k]`` weight.

    Row ((o*C_in + i)*k + ky)*k + kx is weight [o, i, ky, kx]: source (dx, dy, z_in) = (axis(k)
    [kx], axis(k)[ky], axis(C_in)[i]), target (0, 0, axis(C_out)[o]) -> [C_out*C_in*k*k, 7].
    """
    k = kernel_size
    source = grid_positions((in_channels, k, k), device)  # [C_in*k*k, 3], (i, ky, kx) order
    return connection_queries(source, channel_positions(out_channels, device))


def channel_positions(channels: int, device: torch.device | str | None = None) -> Tensor:
    """Positions (0, 0, axis(C)[c]) of C channels (a conv module's output filters): [C, 3]."""
    target = torch.zeros(channels, 3, device=device)
    target[:, 2] = axis(channels, device)
    return target


def express(raw: Tensor, threshold: float = 0.2, max_weight: float = 3.0) -> Tensor:
    """HyperNEAT expression of raw CPPN outputs (any shape, same shape out).

    ``raw`` is clipped to [-1, 1]; |w| <= threshold gives 0 (no connection); the rest maps
    (threshold, 1] linearly onto (0, max_weight], sign kept.
    """
    if not 0.0 <= threshold < 1.0 or max_weight <= 0.0:
        raise ValueError(
            f"need 0 <= threshold < 1 and max_weight > 0, got {threshold}, {max_weight}"
        )
    clipped = raw.clamp(-1.0, 1.0)
    magnitude = (clipped.abs() - threshold).clamp(min=0.0) * (max_weight / (1.0 - threshold))
    # where, not sign * magnitude: unexpressed connections are +0.0, never -0.0.
    return torch.where(magnitude > 0.0, torch.sign(clipped) * magnitude, torch.zeros_like(raw))


def _check_pair(cppn_outputs: int, output_pair: int) -> None:
    if output_pair < 0 or 2 * output_pair + 2 > cppn_outputs:
        raise ValueError(f"output pair {output_pair} needs {2 * output_pair + 2} CPPN outputs")


@torch.no_grad()
def linear_weights(
    cppn: CPPNFunction,
    src: Tensor,
    dst: Tensor,
    output_pair: int = 0,
    threshold: float = 0.2,
    max_weight: float = 3.0,
) -> tuple[Tensor, Tensor]:
    """A linear module's weights painted by ``cppn`` over neurons src -> dst.

    src: [I, 3], dst: [O, 3] -> (weight [O, I], bias [O]): CPPN output ``2*output_pair`` at the
    connection queries gives the weights, output ``2*output_pair + 1`` at the bias queries the
    biases; both expressed by :func:`express`. One CPPN call for all O*I + O queries.
    """
    o, i = dst.shape[0], src.shape[0]
    queries = torch.cat([connection_queries(src, dst), bias_queries(dst)])  # [O*I + O, 7]
    out = cppn(queries)  # [O*I + O, outputs]
    _check_pair(out.shape[1], output_pair)
    weight = express(out[: o * i, 2 * output_pair], threshold, max_weight).reshape(o, i)
    bias = express(out[o * i :, 2 * output_pair + 1], threshold, max_weight)
    return weight, bias


@torch.no_grad()
def conv_weights(
    cppn: CPPNFunction,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    output_pair: int = 0,
    threshold: float = 0.2,
    max_weight: float = 3.0,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """A conv module's weights painted by ``cppn``: (weight [C_out, C_in, k, k], bias [C_out]).

    Outputs ``2*output_pair`` (at :func:`conv_queries`) and ``2*output_pair + 1`` (at the output
    channels' bias queries), expressed by :func:`express`; one CPPN call for all queries.
    """
    k = kernel_size
    weight_queries = conv_queries(in_channels, out_channels, k, device)
    queries = torch.cat([weight_queries, bias_queries(channel_positions(out_channels, device))])
    out = cppn(queries)  # [C_out*C_in*k*k + C_out, outputs]
    _check_pair(out.shape[1], output_pair)
    n = weight_queries.shape[0]
    weight = express(out[:n, 2 * output_pair], threshold, max_weight)
    bias = express(out[n:, 2 * output_pair + 1], threshold, max_weight)
    return weight.reshape(out_channels, in_channels, k, k), bias
