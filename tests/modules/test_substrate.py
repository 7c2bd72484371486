"""Substrate coordinates, query ordering and HyperNEAT weight expression."""

from __future__ import annotations

import random

import pytest
import torch

from pathevo.modules.cppn import compile_cppn, random_cppn, reference_cppn
from pathevo.modules.substrate import (
    QUERY_SIZE,
    axis,
    bias_queries,
    channel_positions,
    connection_queries,
    conv_queries,
    conv_weights,
    express,
    grid_positions,
    linear_weights,
)


def test_axis_is_evenly_spaced_in_unit_interval():
    assert axis(1).tolist() == [0.0]
    assert axis(3).tolist() == [-1.0, 0.0, 1.0]
    assert axis(5).tolist() == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])
    with pytest.raises(ValueError):
        axis(0)


@pytest.mark.parametrize("shape", [(1,), (5,), (3, 4), (2, 3, 4), (1, 1, 1)])
def test_grid_positions_shape_range_and_flatten_order(shape):
    positions = grid_positions(shape)
    n = torch.Size(shape).numel()
    assert positions.shape == (n, 3)
    assert positions.min() >= -1.0 and positions.max() <= 1.0
    assert len({tuple(p) for p in positions.tolist()}) == n  # every neuron has its own place
    # Row r of the flattened layer is the neuron at the unravelled index of r.
    full = (1,) * (3 - len(shape)) + shape
    c, h, w = full
    for r in range(n):
        ci, hi, wi = r // (h * w), (r // w) % h, r % w
        assert positions[r].tolist() == [axis(w)[wi].item(), axis(h)[hi].item(), axis(c)[ci].item()]


def test_grid_positions_line_and_grid_layout():
    assert grid_positions((3,)).tolist() == [[-1, 0, 0], [0, 0, 0], [1, 0, 0]]
    grid = grid_positions((2, 2)).tolist()
    assert grid == [[-1, -1, 0], [1, -1, 0], [-1, 1, 0], [1, 1, 0]]
    with pytest.raises(ValueError):
        grid_positions((1, 2, 3, 4))


def test_connection_queries_are_destination_major():
    src, dst = grid_positions((4,)), grid_positions((2, 3))
    queries = connection_queries(src, dst)
    assert queries.shape == (6 * 4, QUERY_SIZE)
    for o in range(6):
        for i in range(4):
            row = queries[o * 4 + i]
            assert torch.equal(row[:3], src[i]) and torch.equal(row[3:6], dst[o])
            assert row[6].item() == pytest.approx(torch.dist(src[i], dst[o]).item())


def test_bias_queries_start_at_origin():
    dst = grid_positions((2, 3))
    queries = bias_queries(dst)
    assert queries.shape == (6, QUERY_SIZE)
    assert torch.equal(queries[:, :3], torch.zeros(6, 3)) and torch.equal(queries[:, 3:6], dst)
    torch.testing.assert_close(queries[:, 6], dst.norm(dim=1))


def test_conv_queries_follow_weight_layout():
    c_in, c_out, k = 3, 4, 5
    queries = conv_queries(c_in, c_out, k)
    assert queries.shape == (c_out * c_in * k * k, QUERY_SIZE)
    grid = queries.view(c_out, c_in, k, k, QUERY_SIZE)  # indexed like weight [o, i, ky, kx]
    o, i, ky, kx = 2, 1, 3, 0
    expected_source = [axis(k)[kx].item(), axis(k)[ky].item(), axis(c_in)[i].item()]
    expected_target = [0.0, 0.0, axis(c_out)[o].item()]
    assert grid[o, i, ky, kx, :3].tolist() == pytest.approx(expected_source)
    assert grid[o, i, ky, kx, 3:6].tolist() == pytest.approx(expected_target)
    # dx varies along the last axis, dy along ky, input channel along i, output channel along o.
    assert torch.equal(grid[0, 0, 0, :, 0], axis(k)) and torch.equal(grid[0, 0, :, 0, 1], axis(k))
    assert torch.equal(grid[0, :, 0, 0, 2], axis(c_in))
    assert torch.equal(grid[:, 0, 0, 0, 5], axis(c_out))
    assert torch.equal(channel_positions(c_out)[:, 2], axis(c_out))


def test_express_threshold_and_rescale():
    raw = torch.tensor([0.0, 0.1, 0.2, -0.2, 0.6, -0.6, 1.0, -1.0, 1.7, -5.0])
    got = express(raw, threshold=0.2, max_weight=3.0)
    expected = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.5, -1.5, 3.0, -3.0, 3.0, -3.0])
    torch.testing.assert_close(got, expected)
    assert not torch.signbit(got[:4]).any()  # unexpressed connections are +0.0
    assert express(torch.tensor([1.0]), 0.5, 5.0).item() == 5.0
    assert express(torch.tensor([0.75]), 0.5, 5.0).item() == 2.5
    fine = torch.linspace(-1.5, 1.5, 3001)
    values = express(fine)
    assert (values.diff() >= 0).all()  # monotone
    assert torch.equal(torch.sign(values[values != 0]), torch.sign(fine[values != 0]))
    assert (values[fine.abs() <= 0.2] == 0).all() and (values[fine.abs() > 0.2] != 0).all()
    with pytest.raises(ValueError):
        express(raw, threshold=1.0)


def test_linear_weights_match_per_connection_reference():
    graph = random_cppn(QUERY_SIZE, 4, random.Random(0), hidden=6)
    cppn = compile_cppn(graph)
    src, dst = grid_positions((2, 3)), grid_positions((4,))
    weight, bias = linear_weights(cppn, src, dst, output_pair=1, threshold=0.3, max_weight=2.0)
    assert weight.shape == (4, 6) and bias.shape == (4,)
    for o in range(4):
        origin = [0.0, 0.0, 0.0]
        b = reference_cppn(graph, [*origin, *dst[o].tolist(), dst[o].norm().item()])[3]
        assert bias[o].item() == pytest.approx(express(torch.tensor(b), 0.3, 2.0).item(), abs=1e-4)
        for i in range(6):
            query = connection_queries(src[i : i + 1], dst[o : o + 1])[0].tolist()
            w = reference_cppn(graph, query)[2]
            expected = express(torch.tensor(w, dtype=torch.float64), 0.3, 2.0).item()
            assert weight[o, i].item() == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="output pair"):
        linear_weights(cppn, src, dst, output_pair=2)


def test_conv_weights_match_per_connection_reference_for_atari_first_layer():
    # PathNet/DQN's first Atari conv layer: 4 input frames, 8x8 kernels, 16 filters; a 20-node
    # CPPN paints all 4096 weights and 16 biases in one call.
    graph = random_cppn(QUERY_SIZE, 2, random.Random(1), hidden=18)
    assert graph.num_nodes == 20
    weight, bias = conv_weights(compile_cppn(graph), 4, 16, 8)
    assert weight.shape == (16, 4, 8, 8) and bias.shape == (16,)
    queries = conv_queries(4, 16, 8).double()
    raw = torch.tensor([reference_cppn(graph, q)[0] for q in queries.tolist()], dtype=torch.float64)
    expected = express(raw.view(16, 4, 8, 8))
    # Tolerance: float32 CPPN vs float64 reference, times max_weight / (1 - threshold) = 3.75.
    torch.testing.assert_close(weight.double(), expected, atol=2e-4, rtol=0)
    assert (weight == 0).any() and (weight != 0).any()
    targets = bias_queries(channel_positions(16)).double()
    raw_bias = torch.tensor(
        [reference_cppn(graph, q)[1] for q in targets.tolist()], dtype=torch.float64
    )
    torch.testing.assert_close(bias.double(), express(raw_bias), atol=2e-4, rtol=0)
